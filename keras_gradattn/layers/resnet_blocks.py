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
from keras_gradattn.utils import register_serializable

# PyTorch's BatchNorm defaults, which the reference trains with. Keras'
# defaults (momentum 0.99, epsilon 1e-3) adapt 10x slower.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5

STEMS = ("imagenet", "cifar")
BLOCK_ATTENTIONS = (None, "se", "cbam")


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
    return keras.layers.BatchNormalization(
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
    """ResNet basic block with an optional shortcut and attention module.

    With `use_shortcut=True` (ResNet): conv3x3-BN-ReLU-conv3x3-BN
    [-attention] + shortcut, then ReLU; the shortcut is the identity, or a
    1x1 conv + BN when the stride or width changes. With `use_shortcut=False`
    (GradAttn's plain backbone): the same convolutions and a final ReLU, and
    nothing else: gradient reaches earlier layers only through the chain of
    convolutions (and, in GradAttn, through the depth tokens).

    Args:
        filters: output channels.
        strides: stride of the first convolution (and of the projection).
        use_shortcut: keep the residual connection.
        attention: `None`, `"se"` or `"cbam"`, applied after the second BN,
            before the addition.
        attention_reduction: reduction ratio of the attention MLP.
    """

    def __init__(
        self,
        filters,
        strides=1,
        use_shortcut=True,
        attention=None,
        attention_reduction=16,
        **kwargs,
    ):
        super().__init__(**kwargs)
        validate_block_attention(attention)
        self.filters = filters
        self.strides = strides
        self.use_shortcut = use_shortcut
        self.attention = attention
        self.attention_reduction = attention_reduction
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

    def call(self, inputs, training=None):
        x = _apply(self.conv1_pad, inputs)
        x = ops.relu(self.bn1(self.conv1(x), training=training))
        x = _apply(self.conv2_pad, x)
        x = self.bn2(self.conv2(x), training=training)
        x = _apply(self.attention_module, x)
        if self.use_shortcut:
            shortcut = inputs
            if self.shortcut_conv is not None:
                shortcut = self.shortcut_bn(
                    self.shortcut_conv(inputs), training=training
                )
            x = x + shortcut
        return ops.relu(x)

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
                "use_shortcut": self.use_shortcut,
                "attention": self.attention,
                "attention_reduction": self.attention_reduction,
            }
        )
        return config


@register_serializable
class ResNetStage(keras.layers.Layer):
    """A stage of `num_blocks` basic blocks; the first one may downsample.

    Args:
        filters: output channels of every block.
        num_blocks: number of blocks (2 per stage in ResNet-18).
        strides: stride of the first block.
        use_shortcuts: keep the residual connections.
        block_attention: `None`, `"se"` or `"cbam"` in every block.
        attention_reduction: reduction ratio of the attention MLP.
    """

    def __init__(
        self,
        filters,
        num_blocks=2,
        strides=1,
        use_shortcuts=True,
        block_attention=None,
        attention_reduction=16,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(
                f"`num_blocks` must be a positive integer. Received: {num_blocks}"
            )
        self.filters = filters
        self.num_blocks = num_blocks
        self.strides = strides
        self.use_shortcuts = use_shortcuts
        self.block_attention = block_attention
        self.attention_reduction = attention_reduction
        self.blocks = [
            BasicBlock(
                filters,
                strides=strides if index == 0 else 1,
                use_shortcut=use_shortcuts,
                attention=block_attention,
                attention_reduction=attention_reduction,
                dtype=self.dtype_policy,
                name=f"block{index + 1}",
            )
            for index in range(num_blocks)
        ]

    def build(self, input_shape):
        _build_sequence(self.blocks, input_shape)

    def call(self, inputs, training=None):
        x = inputs
        for block in self.blocks:
            x = block(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return self.blocks[0].compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "num_blocks": self.num_blocks,
                "strides": self.strides,
                "use_shortcuts": self.use_shortcuts,
                "block_attention": self.block_attention,
                "attention_reduction": self.attention_reduction,
            }
        )
        return config
