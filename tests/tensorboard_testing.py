"""Reading event files back with TensorBoard's own loader, as TensorBoard does.

The loader runs in a child process with an empty `tensorboard.compat.notf`
registered, which makes TensorBoard use its TensorFlow stub instead of
importing TensorFlow (about 20 s here). In the test process itself that
module would also switch `tf.summary` (TensorBoard's code inside TensorFlow)
to the stub, and break every later test that writes with TensorFlow.
"""

import base64
import json
import re
import subprocess
import sys

_READER = r"""
import base64, json, sys, types
sys.modules["tensorboard.compat.notf"] = types.ModuleType("tensorboard.compat.notf")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

accumulator = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "tensors": 0, "histograms": 0})
accumulator.Reload()
tags = accumulator.Tags()
scalars = {tag: [[e.step, e.value] for e in accumulator.Scalars(tag)] for tag in tags["scalars"]}
tensors = {}
for tag in tags["tensors"]:
    metadata = accumulator.SummaryMetadata(tag)
    points = []
    for event in accumulator.Tensors(tag):
        value = tensor_util.make_ndarray(event.tensor_proto)
        if value.dtype == object:
            value = base64.b64encode(value.item()).decode()
        else:
            value = value.tolist()
        points.append([event.step, value])
    tensors[tag] = {
        "plugin": metadata.plugin_data.plugin_name,
        "content": base64.b64encode(metadata.plugin_data.content).decode(),
        "points": points,
    }
json.dump({"scalars": scalars, "tensors": tensors}, sys.stdout)
"""


def load_with_tensorboard(directory):
    """What TensorBoard's `EventAccumulator` reads from the event files directly in
    `directory`, everything loaded: `{"scalars": {tag: [[step, value], ...]},
    "tensors": {tag: {"plugin", "content" (bytes), "points": [[step, value], ...]}}}`,
    string tensor values as bytes. Scalars written as tensors of the "scalars"
    plugin (by `tf.summary`) are moved to "scalars"."""
    result = subprocess.run(
        [sys.executable, "-c", _READER, str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout)
    for tag, tensor in list(loaded["tensors"].items()):
        tensor["content"] = base64.b64decode(tensor["content"])
        if tensor["plugin"] == "scalars":
            loaded["scalars"][tag] = tensor["points"]
            del loaded["tensors"][tag]
            continue
        tensor["points"] = [
            [step, base64.b64decode(value) if isinstance(value, str) else value] for step, value in tensor["points"]
        ]
    return loaded


def custom_scalars_layouts(loaded):
    """Every Custom Scalars layout proto written, in order."""
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.plugins.custom_scalar import metadata

    tensor = loaded["tensors"][metadata.CONFIG_SUMMARY_TAG]
    assert tensor["plugin"] == metadata.PLUGIN_NAME
    return [layout_pb2.Layout.FromString(value) for _, value in tensor["points"]]


def tags_per_chart(layout, tags):
    """{chart title: the tags its regular expressions match}, as the plugin matches them."""
    charts = {}
    for category in layout.category:
        for chart in category.chart:
            patterns = [re.compile(pattern) for pattern in chart.multiline.tag]
            charts[chart.title] = {tag for tag in tags if any(pattern.match(tag) for pattern in patterns)}
    return charts
