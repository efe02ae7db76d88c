"""Squeeze-and-Excitation and CBAM: the attention modules of the SE- and
CBAM-ResNet-18 baselines. Both MLPs (and CBAM's spatial convolution) have no
biases, as the reference's parameter counts require."""

import keras
from keras import ops

from keras_gradattn.utils import register_serializable


def _reduced_width(channels, reduction):
    # Tiny test widths (e.g. 8 channels, reduction 16) still get one unit.
    return max(1, channels // reduction)


def _validate_reduction(reduction):
    if not isinstance(reduction, int) or reduction < 1:
        raise ValueError(
            f"`reduction` must be a positive integer. Received: {reduction}"
        )


@register_serializable
class SqueezeExcitation(keras.layers.Layer):
    """Squeeze-and-Excitation (Hu et al., 2018): rescales channels by gates
    computed from their global average.

    Args:
        reduction: the bottleneck MLP has `channels // reduction` units.
    """

    def __init__(self, reduction=16, **kwargs):
        super().__init__(**kwargs)
        _validate_reduction(reduction)
        self.reduction = reduction

    def build(self, input_shape):
        channels = input_shape[-1]
        self.squeeze = keras.layers.Dense(
            _reduced_width(channels, self.reduction),
            activation="relu",
            use_bias=False,
            dtype=self.dtype_policy,
            name="squeeze",
        )
        self.excite = keras.layers.Dense(
            channels,
            activation="sigmoid",
            use_bias=False,
            dtype=self.dtype_policy,
            name="excite",
        )
        self.squeeze.build((input_shape[0], channels))
        self.excite.build((input_shape[0], self.squeeze.units))

    def call(self, inputs):
        pooled = ops.mean(inputs, axis=(1, 2))
        gates = self.excite(self.squeeze(pooled))
        return inputs * gates[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction})
        return config


@register_serializable
class ConvolutionalBlockAttention(keras.layers.Layer):
    """CBAM (Woo et al., 2018): channel attention, then spatial attention.

    Channel attention passes the average- and max-pooled descriptors through
    one shared MLP and gates channels with the sigmoid of their sum. Spatial
    attention convolves the channel-wise average and maximum maps (in that
    order) with one `spatial_kernel_size` filter and gates positions.

    Args:
        reduction: the shared MLP has `channels // reduction` units.
        spatial_kernel_size: kernel size of the spatial attention convolution.
    """

    def __init__(self, reduction=16, spatial_kernel_size=7, **kwargs):
        super().__init__(**kwargs)
        _validate_reduction(reduction)
        self.reduction = reduction
        self.spatial_kernel_size = spatial_kernel_size

    def build(self, input_shape):
        channels = input_shape[-1]
        self.channel_squeeze = keras.layers.Dense(
            _reduced_width(channels, self.reduction),
            activation="relu",
            use_bias=False,
            dtype=self.dtype_policy,
            name="channel_squeeze",
        )
        self.channel_excite = keras.layers.Dense(
            channels,
            use_bias=False,
            dtype=self.dtype_policy,
            name="channel_excite",
        )
        self.spatial_conv = keras.layers.Conv2D(
            1,
            self.spatial_kernel_size,
            padding="same",
            use_bias=False,
            dtype=self.dtype_policy,
            name="spatial_conv",
        )
        self.channel_squeeze.build((input_shape[0], channels))
        self.channel_excite.build((input_shape[0], self.channel_squeeze.units))
        self.spatial_conv.build(tuple(input_shape[:-1]) + (2,))

    def _shared_mlp(self, descriptor):
        return self.channel_excite(self.channel_squeeze(descriptor))

    def call(self, inputs):
        average = self._shared_mlp(ops.mean(inputs, axis=(1, 2)))
        maximum = self._shared_mlp(ops.max(inputs, axis=(1, 2)))
        x = inputs * ops.sigmoid(average + maximum)[:, None, None, :]

        spatial_descriptor = ops.concatenate(
            [
                ops.mean(x, axis=-1, keepdims=True),
                ops.max(x, axis=-1, keepdims=True),
            ],
            axis=-1,
        )
        return x * ops.sigmoid(self.spatial_conv(spatial_descriptor))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "reduction": self.reduction,
                "spatial_kernel_size": self.spatial_kernel_size,
            }
        )
        return config
