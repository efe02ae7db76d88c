"""A training run's gradient data, as the analysis reads it from its directory.

A run directory holds the event files written by `GradientNormLogger`
(anywhere below it, e.g. `RUN_DIR/logs`), the logger's
`gradient_norm_layout.json` beside them (layer and stage order), and
optionally `RUN_DIR/gradient_probe.json` from `probe_gradient_flow`.
"""

import dataclasses
import json
import os
import re

import numpy as np

from keras_gradattn.analysis.event_reader import read_events
from keras_gradattn.analysis.probe import PROBE_FILE_NAME
from keras_gradattn.analysis.probe import GradientFlowReport
from keras_gradattn.callbacks.gradient_norm_logger import LAYOUT_FILE_NAME
_DEPTH_ATTENTION_TAG = re.compile(r"^depth_attention/layer(\d+)/(.+)$")
_CONNECTION_TAG = re.compile(r"^connection/([^/]+)/(.+)$")


class RunDataError(ValueError):
    """A run directory the analysis cannot use (the message says why)."""


@dataclasses.dataclass
class Series:
    """Named curves over training steps, in display order."""

    names: list
    steps: np.ndarray
    values: np.ndarray  # (len(names), len(steps)); NaN where a curve has no value

    @property
    def empty(self):
        return not self.names


@dataclasses.dataclass
class RunData:
    name: str
    directory: str
    layers: Series
    stages: Series
    global_norm: Series
    learning_rate: Series
    depth_attention: dict  # encoder layer index -> Series over depth tokens
    probe: GradientFlowReport = None
    # stage -> Series over "<block>/<parameter>": the learned skip-connection
    # values (`connection/` tags), empty for ResNet and plain backbones.
    connection: dict = dataclasses.field(default_factory=dict)

    @property
    def has_training_logs(self):
        return not self.layers.empty


def load_run(directory, name=None):
    """Reads one run directory; raises RunDataError if it has nothing to analyze."""
    directory = os.fspath(directory)
    name = name or os.path.basename(os.path.normpath(directory))
    if not os.path.isdir(directory):
        raise RunDataError(f"run directory {directory!r} does not exist")
    events = read_events(directory)
    layout = _find_layout(directory)
    layer_order = layout.get("layers") if layout else None
    stage_order = layout.get("stages") if layout else None
    probe_path = os.path.join(directory, PROBE_FILE_NAME)
    probe = None
    if os.path.exists(probe_path):
        try:
            probe = GradientFlowReport.load(probe_path)
        except (ValueError, KeyError) as error:  # json.JSONDecodeError is a ValueError
            raise RunDataError(f"cannot read {probe_path!r}: {error}") from None
    run = RunData(
        name=name,
        directory=directory,
        layers=_series(events.scalars, "grad_norm/", layer_order),
        stages=_series(events.scalars, "grad_norm_stage/", stage_order),
        global_norm=_series(events.scalars, "grad_norm_global", None, exact=True),
        learning_rate=_series(events.scalars, "learning_rate", None, exact=True),
        depth_attention=_depth_attention(events.scalars, layout.get("depth_tokens") if layout else None),
        probe=probe,
        connection=_connection(events.scalars),
    )
    if not run.has_training_logs and probe is None:
        raise RunDataError(
            f"run directory {directory!r} has no TensorBoard logs with grad_norm scalars "
            f"(event files found: {len(events.event_files)}) and no {PROBE_FILE_NAME}"
        )
    return run


def _find_layout(directory):
    for root, _, files in os.walk(directory):
        if LAYOUT_FILE_NAME in files:
            with open(os.path.join(root, LAYOUT_FILE_NAME)) as file:
                return json.load(file)
    return None


def _series(scalars, prefix, order, exact=False):
    if exact:
        tags = {prefix: prefix} if prefix in scalars else {}
    else:
        tags = {tag[len(prefix) :]: tag for tag in scalars if tag.startswith(prefix)}
    names = list(tags)
    if order:
        # Model order from the layout file; anything unexpected goes last.
        rank = {name: i for i, name in enumerate(order)}
        names.sort(key=lambda name: (rank.get(name, len(rank)), name))
    else:
        names.sort()
    return _align(names, [scalars[tags[name]] for name in names])


def _align(names, curves):
    if not names:
        return Series(names=[], steps=np.zeros(0, dtype="int64"), values=np.zeros((0, 0)))
    steps = np.unique(np.concatenate([steps for steps, _ in curves]))
    values = np.full((len(names), len(steps)), np.nan)
    for row, (curve_steps, curve_values) in enumerate(curves):
        values[row, np.searchsorted(steps, curve_steps)] = curve_values
    return Series(names=names, steps=steps, values=values)


def _connection(scalars):
    """{stage: Series over "<block>/<parameter>"}, stages in name order."""
    stages = sorted({match.group(1) for match in map(_CONNECTION_TAG.match, scalars) if match})
    return {stage: _series(scalars, f"connection/{stage}/", None) for stage in stages}


def _depth_attention(scalars, token_order):
    """{encoder layer (1-based): Series over depth tokens, in depth order}."""
    layers = sorted({int(match.group(1)) for match in map(_DEPTH_ATTENTION_TAG.match, scalars) if match})
    return {
        layer: _series(scalars, f"depth_attention/layer{layer}/", token_order)
        for layer in layers
    }
