"""The Custom Scalars layout of the gradient logs, and summaries as raw protos.

TensorBoard's Custom Scalars tab draws the charts that a layout proto, stored
in the event files under the tag `custom_scalars__config__`, describes: each
chart plots every scalar tag matched by its regular expressions on one set of
axes. `GradientNormLogger` writes `gradient_flow_layout(...)` once in each of
its event files, so the quantities that are read together are drawn together:
all stages' gradient norms, the global norm beside the learning rate, and the
depth attention of one encoder layer per chart. TensorBoard merges the layouts
of all runs by category title and drops charts that repeat.

Everything is built from TensorBoard's protos, without TensorFlow: the
package's own `custom_scalar.summary.pb` imports TensorFlow.
"""

LAYOUT_CATEGORY = "gradient flow"
STAGE_CHART = "gradient norm per stage"
GLOBAL_CHART = "global gradient norm and learning rate"
ALL_DEPTH_ATTENTION_CHART = "depth attention received, every encoder layer"


def depth_attention_chart_title(encoder_layer):
    return f"depth attention received, encoder layer {encoder_layer}"


def gradient_flow_layout(encoder_layers=0):
    """The layout proto (`tensorboard.plugins.custom_scalar.layout_pb2.Layout`).

    Args:
        encoder_layers: how many encoder layers log `depth_attention/layer<i>/`
            tags: one chart each; 0 for none (a model without depth attention,
            or no `attention_batch`); None when the count is unknown (one chart
            for every `depth_attention/` tag).
    """
    from tensorboard.plugins.custom_scalar import layout_pb2

    def chart(title, *tag_patterns):
        return layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(tag=list(tag_patterns)))

    charts = [
        chart(STAGE_CHART, r"^grad_norm_stage/"),
        chart(GLOBAL_CHART, r"^grad_norm_global$", r"^learning_rate$"),
    ]
    if encoder_layers is None:
        charts.append(chart(ALL_DEPTH_ATTENTION_CHART, r"^depth_attention/"))
    else:
        charts += [
            # [^/]+$ : layer1 must not also match layer10, layer11...
            chart(depth_attention_chart_title(layer), rf"^depth_attention/layer{layer}/[^/]+$")
            for layer in range(1, encoder_layers + 1)
        ]
    return layout_pb2.Layout(category=[layout_pb2.Category(title=LAYOUT_CATEGORY, chart=charts)])


def layout_summary(layout):
    """A `Summary` proto holding `layout`, as the Custom Scalars plugin reads it."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.compat.proto import tensor_pb2
    from tensorboard.compat.proto import tensor_shape_pb2
    from tensorboard.compat.proto import types_pb2
    from tensorboard.plugins.custom_scalar import metadata

    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(),
        string_val=[layout.SerializeToString()],
    )
    value = summary_pb2.Summary.Value(
        tag=metadata.CONFIG_SUMMARY_TAG, metadata=metadata.create_summary_metadata(), tensor=tensor
    )
    return summary_pb2.Summary(value=[value])
