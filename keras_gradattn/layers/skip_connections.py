"""Learned replacements for the residual sum, shared by the ResNet stages.

Three layers combine feature maps across the blocks of a stage:

- `DepthWeightedAverage`: DenseFormer's depth-weighted average (Pagliardini
  et al. 2024, arXiv 2402.02622), a learned scalar per earlier output.
- `AttentionResidual`: Attention Residuals (Kimi Team 2026, arXiv
  2603.15031), a per-example softmax over earlier outputs whose logits come
  from one learned pseudo-query against RMS-normalised, pooled outputs.
- `HyperConnection`: static hyper-connections (Zhu et al. 2024, arXiv
  2409.19606), `n` residual streams read and written by small learned
  matrices.

The per-block connections (ReZero, LayerScale, Highway) live inside
`BasicBlock`; docs/design_space.md explains every method and its adaptation
to a CNN.
"""

import keras
from keras import ops

from keras_gradattn.utils import register_serializable


def _sources_list(sources, layer_name, expected=None):
    if not isinstance(sources, (list, tuple)) or not sources:
        raise ValueError(
            f"{layer_name} takes a non-empty list of feature maps. "
            f"Received: {type(sources).__name__}"
        )
    if expected is not None and len(sources) != expected:
        raise ValueError(
            f"{layer_name} was built for {expected} feature maps. "
            f"Received: {len(sources)}"
        )
    # Direct calls of `read` or `depth_weights` skip Layer.__call__, which
    # would otherwise convert NumPy inputs.
    return [
        source if isinstance(source, keras.KerasTensor) or ops.is_tensor(source)
        else ops.convert_to_tensor(source)
        for source in sources
    ]


@register_serializable
class DepthWeightedAverage(keras.layers.Layer):
    """A learned weighted sum of `num_inputs` same-shaped feature maps.

    `call([x0, x1, ..., xk])` returns `sum_j weights[j] * x_j`. The weights
    start at `(0, ..., 0, 1)`, so the layer initially returns its newest input
    and the network is exactly the residual network it was added to
    (DenseFormer's initialisation).

    Args:
        num_inputs: how many feature maps the layer averages (>= 1).
    """

    def __init__(self, num_inputs, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_inputs, int) or isinstance(num_inputs, bool) or num_inputs < 1:
            raise ValueError(
                f"`num_inputs` must be a positive integer. Received: {num_inputs!r}"
            )
        self.num_inputs = num_inputs

    def build(self, input_shape):
        initial = [0.0] * (self.num_inputs - 1) + [1.0]
        self.depth_weights = self.add_weight(
            shape=(self.num_inputs,),
            initializer=keras.initializers.Constant(initial),
            name="depth_weights",
        )

    def call(self, sources):
        sources = _sources_list(sources, "DepthWeightedAverage", self.num_inputs)
        weights = ops.cast(self.depth_weights, sources[0].dtype)
        output = weights[0] * sources[0]
        for index in range(1, self.num_inputs):
            output = output + weights[index] * sources[index]
        return output

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"num_inputs": self.num_inputs})
        return config


@register_serializable
class AttentionResidual(keras.layers.Layer):
    """Softmax attention over depth: one pseudo-query against earlier outputs.

    For feature maps `[v_0, ..., v_k]` of shape `(batch, H, W, C)`, each is
    global-average pooled to `(batch, C)` and RMS-normalised with a learned
    per-channel scale: that is its key. The logits are the keys' dot products
    with a learned query vector (one per layer, shape `(C,)`); a softmax over
    the `k + 1` sources, per example, gives the weights, and the output is the
    weighted sum of the unpooled maps. The query starts at zero, so the
    weights start uniform.

    Args:
        epsilon: added to the mean square in the RMS normalisation (> 0).
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or not epsilon > 0:
            raise ValueError(
                f"`epsilon` of AttentionResidual must be a positive number. "
                f"Received: {epsilon!r}"
            )
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[0][-1]
        self.query = self.add_weight(shape=(channels,), initializer="zeros", name="query")
        self.key_scale = self.add_weight(shape=(channels,), initializer="ones", name="key_scale")

    def depth_weights(self, sources):
        """The softmax weights over `sources`, shape `(batch, len(sources))`."""
        sources = _sources_list(sources, "AttentionResidual")
        query = ops.cast(self.query, sources[0].dtype)
        scale = ops.cast(self.key_scale, sources[0].dtype)
        logits = []
        for source in sources:
            pooled = ops.mean(source, axis=(1, 2))
            rms = ops.sqrt(ops.mean(ops.square(pooled), axis=-1, keepdims=True) + self.epsilon)
            key = pooled / rms * scale
            logits.append(ops.sum(key * query, axis=-1))
        return ops.softmax(ops.stack(logits, axis=-1), axis=-1)

    def call(self, sources):
        sources = _sources_list(sources, "AttentionResidual")
        weights = self.depth_weights(sources)
        output = None
        for index, source in enumerate(sources):
            term = weights[:, index, None, None, None] * source
            output = term if output is None else output + term
        return output

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


@register_serializable
class HyperConnection(keras.layers.Layer):
    """Static hyper-connections of one block over `expansion_rate` streams.

    The `n` streams `h_0 .. h_{n-1}` replace the single residual stream:

    - `read(streams)`, the width connection, gives the block its input
      `sum_j width_weights[j] * h_j`;
    - `call([streams, block_output])`, the depth connection, returns the new
      streams `h'_j = sum_i stream_mixing[i, j] * h_i + depth_weights[j] * y`.

    Initialisation follows the paper: `width_weights = e_{block_index mod n}`,
    `stream_mixing = I`, `depth_weights = 1`. When all streams start equal
    (the stage copies its input), every stream then stays the residual
    network's stream: the network starts as that residual network.

    Args:
        expansion_rate: number of streams `n` (>= 1).
        block_index: the block's position in its stage (0-based), which
            picks the stream its input is read from at initialisation.
    """

    def __init__(self, expansion_rate=4, block_index=0, **kwargs):
        super().__init__(**kwargs)
        validate_expansion_rate(expansion_rate)
        if not isinstance(block_index, int) or isinstance(block_index, bool) or block_index < 0:
            raise ValueError(
                f"`block_index` must be a non-negative integer. Received: {block_index!r}"
            )
        self.expansion_rate = expansion_rate
        self.block_index = block_index

    def build(self, input_shape=None):
        n = self.expansion_rate
        width = [0.0] * n
        width[self.block_index % n] = 1.0
        self.width_weights = self.add_weight(
            shape=(n,), initializer=keras.initializers.Constant(width), name="width_weights"
        )
        self.stream_mixing = self.add_weight(
            shape=(n, n), initializer="identity", name="stream_mixing"
        )
        self.depth_weights = self.add_weight(
            shape=(n,), initializer="ones", name="depth_weights"
        )

    def read(self, streams):
        """The block's input: a learned combination of the streams."""
        streams = _sources_list(streams, "HyperConnection", self.expansion_rate)
        width = ops.cast(self.width_weights, streams[0].dtype)
        output = width[0] * streams[0]
        for index in range(1, self.expansion_rate):
            output = output + width[index] * streams[index]
        return output

    def call(self, inputs):
        streams, block_output = inputs
        streams = _sources_list(streams, "HyperConnection", self.expansion_rate)
        mixing = ops.cast(self.stream_mixing, block_output.dtype)
        depth = ops.cast(self.depth_weights, block_output.dtype)
        new_streams = []
        for target in range(self.expansion_rate):
            stream = depth[target] * block_output
            for source in range(self.expansion_rate):
                stream = stream + mixing[source, target] * streams[source]
            new_streams.append(stream)
        return new_streams

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[1])] * self.expansion_rate

    def get_config(self):
        config = super().get_config()
        config.update(
            {"expansion_rate": self.expansion_rate, "block_index": self.block_index}
        )
        return config


def validate_expansion_rate(expansion_rate):
    if (
        not isinstance(expansion_rate, int)
        or isinstance(expansion_rate, bool)
        or expansion_rate < 1
    ):
        raise ValueError(
            "`expansion_rate` (the number of hyper-connection streams) must be an "
            f"integer >= 1. Received: {expansion_rate!r}"
        )
