"""ResNet building blocks that can drop their shortcuts.

Weight paths follow the architecture (`stem/conv`, `stage2/block1/conv1`), so
gradient logs and checkpoints read like the model. Strided convolutions pad
symmetrically as PyTorch does (Keras' "same" pads one pixel less on the top and
left for even inputs), so feature maps line up with the reference pixel for
pixel.
"""

import keras
from keras import ops

from keras_gradattn.layers.channel_attention import ConvolutionalBlockAttention
from keras_gradattn.layers.channel_attention import SqueezeExcitation
from keras_gradattn.layers.fast_paths import FusedBatchNormalization
from keras_gradattn.layers.skip_connections import AttentionResidual
from keras_gradattn.layers.skip_connections import DepthWeightedAverage
from keras_gradattn.layers.skip_connections import HyperConnection
from keras_gradattn.layers.skip_connections import validate_expansion_rate
from keras_gradattn.utils import register_serializable

# PyTorch's BatchNorm defaults, which the reference trains with. Keras'
# defaults (momentum 0.99, epsilon 1e-3) adapt 10x slower.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5

STEMS = ("imagenet", "cifar")
BLOCK_ATTENTIONS = (None, "se", "cbam")

# How a block's residual branch F(x) meets its input; docs/design_space.md.
CONNECTIONS = (
    "identity", "none", "rezero", "layerscale", "highway", "dwa", "attnres", "hyper",
)
# Connections that combine blocks across a stage (the stage orchestrates
# them); the others are complete inside one block.
STAGE_CONNECTIONS = ("dwa", "attnres", "hyper")
DEFAULT_LAYERSCALE_EPSILON = 1e-6
DEFAULT_EXPANSION_RATE = 4
# Highway gate bias: sigmoid(-2) = 0.12, so blocks start mostly carrying
# their input (Srivastava et al. suggest -1 to -3).
HIGHWAY_GATE_BIAS = -2.0


def validate_connection(connection):
    if connection not in CONNECTIONS:
        raise ValueError(
            f"Unknown `connection`: {connection!r}. Allowed: "
            + ", ".join(repr(name) for name in CONNECTIONS)
            + "."
        )


def resolve_connection(use_shortcuts=None, connection=None):
    """The connection named by the new `connection` argument or the older
    `use_shortcuts` flag (True: "identity", False: "none"); both given, they
    must agree (use_shortcuts=False goes only with "none")."""
    if use_shortcuts is not None and not isinstance(use_shortcuts, bool):
        raise ValueError(
            f"`use_shortcuts` must be True or False. Received: {use_shortcuts!r}"
        )
    if connection is None:
        return "none" if use_shortcuts is False else "identity"
    validate_connection(connection)
    if use_shortcuts is not None and use_shortcuts != (connection != "none"):
        raise ValueError(
            f"`use_shortcuts={use_shortcuts}` contradicts `connection={connection!r}`. "
            "Allowed: use_shortcuts=False only with connection='none', "
            "use_shortcuts=True with any other connection; or pass only `connection`."
        )
    return connection


def validate_layerscale_epsilon(epsilon):
    if (
        not isinstance(epsilon, (int, float))
        or isinstance(epsilon, bool)
        or not epsilon >= 0
    ):
        raise ValueError(
            "`layerscale_epsilon` (LayerScale's initial per-channel scale) must "
            f"be a number >= 0. Received: {epsilon!r}"
        )


def validate_block_attention(block_attention):
    if block_attention not in BLOCK_ATTENTIONS:
        raise ValueError(
            f"Unknown `block_attention`: {block_attention!r}. "
            "Allowed: None, 'se', 'cbam'."
        )


def validate_stem(stem):
    if stem not in STEMS:
        raise ValueError(
            f"Unknown `stem`: {stem!r}. Allowed: 'imagenet' (7x7 stride-2 "
            "conv + 3x3 stride-2 max-pool, as the paper) or 'cifar' (3x3 "
            "stride-1 conv, for small images)."
        )


def _conv(filters, kernel_size, strides, name, dtype):
    """Returns (padding_layer_or_None, conv): stride 1 with an odd kernel is
    already symmetric under "same"; larger strides get explicit padding."""
    if strides == 1:
        padding_layer, padding = None, "same"
    else:
        padding_layer = keras.layers.ZeroPadding2D(
            kernel_size // 2, dtype=dtype, name=f"{name}_pad"
        )
        padding = "valid"
    conv = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer="he_normal",
        dtype=dtype,
        name=name,
    )
    return padding_layer, conv


def _batch_norm(name, dtype):
    return FusedBatchNormalization(
        momentum=BATCH_NORM_MOMENTUM,
        epsilon=BATCH_NORM_EPSILON,
        dtype=dtype,
        name=name,
    )


def _build_sequence(layers, input_shape):
    """Builds `layers` in order and returns the final output shape."""
    shape = input_shape
    for layer in layers:
        if layer is None:
            continue
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape


def _scalar(value):
    return float(ops.convert_to_numpy(ops.cast(value, "float32")))


def _apply(layer, x):
    """Applies an optional, stateless layer (padding, pooling, attention)."""
    return x if layer is None else layer(x)


@register_serializable
class ResNetStem(keras.layers.Layer):
    """The stem of a ResNet.

    `"imagenet"` (the paper, for every input size): 7x7 stride-2 convolution,
    BatchNorm, ReLU, 3x3 stride-2 max-pool; 4x downsampling. `"cifar"`: 3x3
    stride-1 convolution, BatchNorm, ReLU; no downsampling, so small images
    keep their detail (at about 16x the compute of the ImageNet stem).

    Args:
        kind: `"imagenet"` or `"cifar"`.
        filters: output channels.
    """

    def __init__(self, kind="imagenet", filters=64, **kwargs):
        super().__init__(**kwargs)
        validate_stem(kind)
        self.kind = kind
        self.filters = filters
        if kind == "imagenet":
            self.conv_pad, self.conv = _conv(
                filters, 7, 2, "conv", self.dtype_policy
            )
            # Zero padding equals PyTorch's -inf padding here: inputs are
            # post-ReLU, hence non-negative.
            self.pool_pad = keras.layers.ZeroPadding2D(
                1, dtype=self.dtype_policy, name="pool_pad"
            )
            self.pool = keras.layers.MaxPooling2D(
                3, strides=2, dtype=self.dtype_policy, name="pool"
            )
        else:
            self.conv_pad, self.conv = _conv(
                filters, 3, 1, "conv", self.dtype_policy
            )
            self.pool_pad = self.pool = None
        self.norm = _batch_norm("bn", self.dtype_policy)

    @property
    def reduction(self):
        return 4 if self.kind == "imagenet" else 1

    def _sequence(self):
        return [self.conv_pad, self.conv, self.norm, self.pool_pad, self.pool]

    def build(self, input_shape):
        _build_sequence(self._sequence(), input_shape)

    def call(self, inputs, training=None):
        x = _apply(self.conv_pad, inputs)
        x = self.conv(x)
        x = self.norm(x, training=training)
        x = ops.relu(x)
        x = _apply(self.pool_pad, x)
        return _apply(self.pool, x)

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self._sequence():
            if layer is not None:
                shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update({"kind": self.kind, "filters": self.filters})
        return config


@register_serializable
class BasicBlock(keras.layers.Layer):
    """ResNet basic block whose skip connection is chosen by `connection`.

    The residual branch F(x) is conv3x3-BN-ReLU-conv3x3-BN[-attention]. The
    block returns ReLU of:

    - `"identity"` (ResNet): `x' + F(x)`, where `x'` is `x`, or a 1x1 conv +
      BN projection of it when the stride or width changes;
    - `"none"` (GradAttn's plain backbone): `F(x)` alone;
    - `"rezero"`: `x' + alpha * F(x)`, one scalar `alpha` starting at 0;
    - `"layerscale"`: `x' + gamma * F(x)`, a per-channel `gamma` starting at
      `layerscale_epsilon`;
    - `"highway"`: `T * F(x) + (1 - T) * x'` with `T = sigmoid(gate(x))`, the
      gate a 1x1 convolution (zero kernel, bias -2: the block starts mostly
      carrying `x'`).

    `"dwa"`, `"attnres"` and `"hyper"` combine blocks across a stage, which
    `ResNetStage` does; alone, such a block behaves as `"identity"` (`dwa`,
    `hyper`) or `"none"` (`attnres`, which keeps its projection for the
    stage's use).

    Args:
        filters: output channels.
        strides: stride of the first convolution (and of the projection).
        use_shortcut: older form of `connection` (True: "identity", False:
            "none"); kept so that earlier configs load.
        attention: `None`, `"se"` or `"cbam"`, applied after the second BN,
            before the connection.
        attention_reduction: reduction ratio of the attention MLP.
        connection: one of `CONNECTIONS`; default "identity".
        layerscale_epsilon: LayerScale's initial scale (>= 0).
    """

    def __init__(
        self,
        filters,
        strides=1,
        use_shortcut=None,
        attention=None,
        attention_reduction=16,
        connection=None,
        layerscale_epsilon=DEFAULT_LAYERSCALE_EPSILON,
        **kwargs,
    ):
        super().__init__(**kwargs)
        validate_block_attention(attention)
        connection = resolve_connection(use_shortcut, connection)
        validate_layerscale_epsilon(layerscale_epsilon)
        self.filters = filters
        self.strides = strides
        self.connection = connection
        self.attention = attention
        self.attention_reduction = attention_reduction
        self.layerscale_epsilon = layerscale_epsilon
        dtype = self.dtype_policy
        self.conv1_pad, self.conv1 = _conv(filters, 3, strides, "conv1", dtype)
        self.bn1 = _batch_norm("bn1", dtype)
        self.conv2_pad, self.conv2 = _conv(filters, 3, 1, "conv2", dtype)
        self.bn2 = _batch_norm("bn2", dtype)
        if attention == "se":
            self.attention_module = SqueezeExcitation(
                attention_reduction, dtype=dtype, name="se"
            )
        elif attention == "cbam":
            self.attention_module = ConvolutionalBlockAttention(
                attention_reduction, dtype=dtype, name="cbam"
            )
        else:
            self.attention_module = None
        self.shortcut_conv = self.shortcut_bn = None
        self.gate = None

    @property
    def use_shortcut(self):
        """Whether the block's input reaches its output past F (all but "none")."""
        return self.connection != "none"

    def build(self, input_shape):
        shape = _build_sequence(
            [self.conv1_pad, self.conv1, self.bn1, self.conv2_pad, self.conv2],
            input_shape,
        )
        _build_sequence([self.bn2, self.attention_module], shape)
        needs_projection = self.strides != 1 or input_shape[-1] != self.filters
        if self.use_shortcut and needs_projection:
            self.shortcut_conv = keras.layers.Conv2D(
                self.filters,
                1,
                strides=self.strides,
                use_bias=False,
                kernel_initializer="he_normal",
                dtype=self.dtype_policy,
                name="shortcut_conv",
            )
            self.shortcut_bn = _batch_norm("shortcut_bn", self.dtype_policy)
            _build_sequence([self.shortcut_conv, self.shortcut_bn], input_shape)
        if self.connection == "rezero":
            self.rezero_alpha = self.add_weight(
                shape=(), initializer="zeros", name="rezero_alpha"
            )
        elif self.connection == "layerscale":
            self.layerscale_gamma = self.add_weight(
                shape=(self.filters,),
                initializer=keras.initializers.Constant(self.layerscale_epsilon),
                name="layerscale_gamma",
            )
        elif self.connection == "highway":
            # A zero kernel: every position starts at T = sigmoid(bias).
            self.gate = keras.layers.Conv2D(
                self.filters,
                1,
                strides=self.strides,
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(HIGHWAY_GATE_BIAS),
                dtype=self.dtype_policy,
                name="highway_gate",
            )
            self.gate.build(input_shape)

    def residual_branch(self, inputs, training=None):
        """F(x): the convolutions, BatchNorms and attention module."""
        x = _apply(self.conv1_pad, inputs)
        x = ops.relu(self.bn1(self.conv1(x), training=training))
        x = _apply(self.conv2_pad, x)
        x = self.bn2(self.conv2(x), training=training)
        return _apply(self.attention_module, x)

    def project(self, inputs, training=None):
        """x': the input at the output's shape (projection or identity)."""
        if self.shortcut_conv is None:
            return inputs
        return self.shortcut_bn(self.shortcut_conv(inputs), training=training)

    def highway_gate(self, inputs):
        """T, the Highway block's transform gate, in (0, 1)."""
        return ops.sigmoid(self.gate(inputs))

    def call(self, inputs, training=None):
        branch = self.residual_branch(inputs, training=training)
        connection = self.connection
        if connection in ("none", "attnres"):
            return ops.relu(branch)
        shortcut = self.project(inputs, training=training)
        if connection == "rezero":
            branch = ops.cast(self.rezero_alpha, branch.dtype) * branch
        elif connection == "layerscale":
            branch = ops.cast(self.layerscale_gamma, branch.dtype) * branch
        elif connection == "highway":
            transform = self.highway_gate(inputs)
            return ops.relu(transform * branch + (1.0 - transform) * shortcut)
        return ops.relu(shortcut + branch)

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in (self.conv1_pad, self.conv1):
            if layer is not None:
                shape = layer.compute_output_shape(shape)
        return tuple(shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "strides": self.strides,
                "attention": self.attention,
                "attention_reduction": self.attention_reduction,
                "connection": self.connection,
                "layerscale_epsilon": self.layerscale_epsilon,
            }
        )
        return config


@register_serializable
class ResNetStage(keras.layers.Layer):
    """A stage of `num_blocks` basic blocks; the first one may downsample.

    Per-block connections ("identity", "none", "rezero", "layerscale",
    "highway") chain the blocks. The others combine them across the stage
    (docs/design_space.md):

    - `"dwa"`: residual blocks, each followed by a `DepthWeightedAverage` of
      [stage input, block outputs so far]; the stage input crosses a stride
      or width change through block 1's projection shortcut.
    - `"attnres"`: plain blocks, each followed by an `AttentionResidual` over
      [projected stage input, plain block outputs so far]; its result feeds
      the next block (the last one's is the stage output).
    - `"hyper"`: `expansion_rate` copies of the stage input are the streams;
      each block reads its input from them and writes its branch F(x) back
      through a `HyperConnection`, followed by ReLU (ResNet's post-addition
      activation, applied per stream); at a stride or width change the
      streams go through block 1's projection shortcut, concatenated on the
      batch axis. The stage returns the mean of the streams.

    Args:
        filters: output channels of every block.
        num_blocks: number of blocks (2 per stage in ResNet-18).
        strides: stride of the first block.
        use_shortcuts: older form of `connection` (True: "identity", False:
            "none").
        block_attention: `None`, `"se"` or `"cbam"` in every block.
        attention_reduction: reduction ratio of the attention MLP.
        connection: one of `CONNECTIONS`; default "identity".
        layerscale_epsilon: LayerScale's initial scale (>= 0).
        expansion_rate: number of hyper-connection streams (>= 1).
    """

    def __init__(
        self,
        filters,
        num_blocks=2,
        strides=1,
        use_shortcuts=None,
        block_attention=None,
        attention_reduction=16,
        connection=None,
        layerscale_epsilon=DEFAULT_LAYERSCALE_EPSILON,
        expansion_rate=DEFAULT_EXPANSION_RATE,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(
                f"`num_blocks` must be a positive integer. Received: {num_blocks}"
            )
        connection = resolve_connection(use_shortcuts, connection)
        validate_layerscale_epsilon(layerscale_epsilon)
        validate_expansion_rate(expansion_rate)
        self.filters = filters
        self.num_blocks = num_blocks
        self.strides = strides
        self.connection = connection
        self.block_attention = block_attention
        self.attention_reduction = attention_reduction
        self.layerscale_epsilon = layerscale_epsilon
        self.expansion_rate = expansion_rate
        self.blocks = [
            BasicBlock(
                filters,
                strides=strides if index == 0 else 1,
                attention=block_attention,
                attention_reduction=attention_reduction,
                connection=connection,
                layerscale_epsilon=layerscale_epsilon,
                dtype=self.dtype_policy,
                name=f"block{index + 1}",
            )
            for index in range(num_blocks)
        ]
        dtype = self.dtype_policy
        self.depth_averages = self.attention_residuals = self.hyper_connections = None
        if connection == "dwa":
            self.depth_averages = [
                DepthWeightedAverage(index + 2, dtype=dtype, name=f"block{index + 1}_dwa")
                for index in range(num_blocks)
            ]
        elif connection == "attnres":
            self.attention_residuals = [
                AttentionResidual(dtype=dtype, name=f"block{index + 1}_attnres")
                for index in range(num_blocks)
            ]
        elif connection == "hyper":
            self.hyper_connections = [
                HyperConnection(
                    expansion_rate, block_index=index, dtype=dtype,
                    name=f"block{index + 1}_hyper",
                )
                for index in range(num_blocks)
            ]

    @property
    def use_shortcuts(self):
        return self.connection != "none"

    def build(self, input_shape):
        output_shape = _build_sequence(self.blocks, input_shape)
        for layers in (self.depth_averages, self.attention_residuals):
            for index, layer in enumerate(layers or ()):
                layer.build([output_shape] * (index + 2))
        for layer in self.hyper_connections or ():
            layer.build()

    def call(self, inputs, training=None):
        if self.connection == "dwa":
            return self._call_depth_weighted(inputs, training)
        if self.connection == "attnres":
            return self._call_attention_residual(inputs, training)
        if self.connection == "hyper":
            return self._call_hyper(inputs, training)
        x = inputs
        for block in self.blocks:
            x = block(x, training=training)
        return x

    def _call_depth_weighted(self, inputs, training):
        outputs = [self.blocks[0].project(inputs, training=training)]
        x = inputs
        for block, average in zip(self.blocks, self.depth_averages):
            outputs.append(block(x, training=training))
            x = average(outputs)
        return x

    def _call_attention_residual(self, inputs, training):
        outputs = [self.blocks[0].project(inputs, training=training)]
        x = inputs
        for block, attention in zip(self.blocks, self.attention_residuals):
            outputs.append(block(x, training=training))
            x = attention(outputs)
        return x

    def _call_hyper(self, inputs, training):
        n = self.expansion_rate
        streams = [inputs] * n
        for block, hyper in zip(self.blocks, self.hyper_connections):
            branch = block.residual_branch(hyper.read(streams), training=training)
            if block.shortcut_conv is not None:
                # One projection call for all streams: the same weights as a
                # ResNet's shortcut, with BatchNorm statistics over n * batch.
                projected = block.project(
                    ops.concatenate(streams, axis=0), training=training
                )
                streams = ops.split(projected, n, axis=0) if n > 1 else [projected]
            streams = [ops.relu(stream) for stream in hyper([streams, branch])]
        output = streams[0]
        for stream in streams[1:]:
            output = output + stream
        return output / float(n) if n > 1 else output

    def connection_parameters(self, inputs=None):
        """The learned connection values, `{"block1/alpha": value, ...}`.

        Static values (ReZero's alpha, LayerScale's mean gamma, DWA's weights,
        hyper-connection weights) are read from the variables. Values that
        depend on the input (Highway's mean gate, AttnRes' weights, averaged
        over the batch) need this stage's `inputs`, and are left out without
        them. Sources of DWA and AttnRes are named `input` (the stage input),
        `block1`, `block2`, ... Empty for "identity" and "none".
        """
        values = {}
        connection = self.connection
        sources = ["input"] + [block.name for block in self.blocks]
        if connection == "rezero":
            for block in self.blocks:
                values[f"{block.name}/alpha"] = _scalar(block.rezero_alpha)
        elif connection == "layerscale":
            for block in self.blocks:
                values[f"{block.name}/gamma_mean"] = _scalar(ops.mean(block.layerscale_gamma))
        elif connection == "dwa":
            for block, average in zip(self.blocks, self.depth_averages):
                weights = ops.convert_to_numpy(average.depth_weights)
                for source, weight in zip(sources, weights):
                    values[f"{block.name}/weight_{source}"] = float(weight)
        elif connection == "hyper":
            for block, hyper in zip(self.blocks, self.hyper_connections):
                for name, variable in (("width", hyper.width_weights), ("depth", hyper.depth_weights)):
                    for index, weight in enumerate(ops.convert_to_numpy(variable)):
                        values[f"{block.name}/{name}_{index}"] = float(weight)
        if inputs is None:
            return values
        if connection == "highway":
            x = inputs
            for block in self.blocks:
                values[f"{block.name}/gate_mean"] = _scalar(ops.mean(block.highway_gate(x)))
                x = block(x, training=False)
        elif connection == "attnres":
            outputs = [self.blocks[0].project(inputs, training=False)]
            x = inputs
            for block, attention in zip(self.blocks, self.attention_residuals):
                outputs.append(block(x, training=False))
                weights = ops.convert_to_numpy(ops.mean(attention.depth_weights(outputs), axis=0))
                for source, weight in zip(sources, weights):
                    values[f"{block.name}/weight_{source}"] = float(weight)
                x = attention(outputs)
        return values

    def connection_layers(self):
        """{block name: the stage-level connection layer after it} (empty for
        per-block connections)."""
        layers = self.depth_averages or self.attention_residuals or self.hyper_connections
        return {block.name: layer for block, layer in zip(self.blocks, layers or ())}

    def compute_output_shape(self, input_shape):
        return self.blocks[0].compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "num_blocks": self.num_blocks,
                "strides": self.strides,
                "block_attention": self.block_attention,
                "attention_reduction": self.attention_reduction,
                "connection": self.connection,
                "layerscale_epsilon": self.layerscale_epsilon,
                "expansion_rate": self.expansion_rate,
            }
        )
        return config
