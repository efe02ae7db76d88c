import collections

import keras

from keras_gradattn.layers.resnet_blocks import ResNetStage
from keras_gradattn.layers.resnet_blocks import DEFAULT_EXPANSION_RATE
from keras_gradattn.layers.resnet_blocks import DEFAULT_LAYERSCALE_EPSILON
from keras_gradattn.layers.resnet_blocks import ResNetStem
from keras_gradattn.layers.resnet_blocks import resolve_connection
from keras_gradattn.layers.resnet_blocks import validate_block_attention
from keras_gradattn.layers.resnet_blocks import validate_layerscale_epsilon
from keras_gradattn.layers.skip_connections import validate_expansion_rate
from keras_gradattn.layers.resnet_blocks import validate_stem
from keras_gradattn.utils import register_serializable

TapInfo = collections.namedtuple("TapInfo", ["name", "channels", "reduction"])
TapInfo.__doc__ = """A backbone output: its name, channels and downsampling
factor relative to the input (the role of timm's `feature_info`)."""


def _positive_int_tuple(name, values):
    values = tuple(values)
    if not values or not all(isinstance(v, int) and v > 0 for v in values):
        raise ValueError(
            f"`{name}` must be a non-empty sequence of positive integers. "
            f"Received: {values}"
        )
    return values


def _validate_input_shape(input_shape, stem, num_stages):
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels), channels last. "
            f"Received: {input_shape} (rank {len(input_shape)})"
        )
    if input_shape[-1] is None or input_shape[-1] < 1:
        raise ValueError(
            f"The number of input channels must be known and positive. "
            f"Received input_shape: {input_shape}"
        )
    num_downsamplings = (2 if stem == "imagenet" else 0) + num_stages - 1
    minimum = minimum_input_size(num_downsamplings)
    for size in input_shape[:2]:
        if size is not None and size < minimum:
            raise ValueError(
                f"input_shape {input_shape} is too small for the {stem!r} stem "
                f"with {num_stages} stages: each of its {num_downsamplings} "
                "stride-2 downsamplings needs at least 2 pixels, so height and "
                f"width must be >= {minimum}. Use larger images or "
                "stem='cifar'."
            )
    return input_shape


def minimum_input_size(num_downsamplings):
    """Smallest side whose feature map is still >= 2 pixels before the last of
    `num_downsamplings` stride-2 steps (each maps n pixels to ceil(n / 2))."""
    if num_downsamplings == 0:
        return 1
    return 2 ** (num_downsamplings - 1) + 1


@register_serializable
class ResNetBackbone(keras.Model):
    """A ResNet (or shortcut-free "plain" ResNet) that returns its taps.

    The backbone maps images to a dict of multi-scale feature maps, one per
    depth: `"stem"` (after the stem's max-pool) and `"stage1"` ... `"stageN"`.
    These taps are public API: `tap_info` lists each one's channels and
    reduction, ResNet classifiers read the last one, and GradAttn turns the
    selected ones into depth tokens. Address taps by name: `tap_names` gives
    depth order (the dict's own order varies by backend; torch sorts keys).

    Args:
        stage_blocks: blocks per stage: `(2, 2, 2, 2)` is ResNet-18,
            `(3, 4, 6, 3)` ResNet-34.
        stage_widths: output channels per stage.
        stem: `"imagenet"` (7x7 stride-2 conv + max-pool, the paper's choice
            for every input size) or `"cifar"` (3x3 stride-1 conv).
        stem_width: channels of the stem.
        use_shortcuts: older form of `connection`: True is "identity"
            (ResNet), False is "none" (the plain backbone of GradAttn).
        block_attention: `None`, `"se"` or `"cbam"` in every block.
        attention_reduction: reduction ratio of the SE/CBAM MLPs.
        connection: how blocks combine their input with their residual
            branch: "identity" (ResNet, the default), "none", "rezero",
            "layerscale", "highway", "dwa", "attnres" or "hyper"; see
            docs/design_space.md.
        layerscale_epsilon: LayerScale's initial per-channel scale (>= 0).
        expansion_rate: number of hyper-connection streams (>= 1).
        input_shape: `(height, width, channels)`, channels last; height and
            width may be `None`.
        dtype: dtype policy of the layers, e.g. `"mixed_bfloat16"`.

    Example:
    ```python
    backbone = ResNetBackbone(use_shortcuts=False, input_shape=(28, 28, 1))
    taps = backbone(images)          # {"stem": (B, 7, 7, 64), ..., "stage4": (B, 1, 1, 512)}
    backbone.tap_info[-1]            # TapInfo(name='stage4', channels=512, reduction=32)
    ```
    """

    def __init__(
        self,
        stage_blocks=(2, 2, 2, 2),
        stage_widths=(64, 128, 256, 512),
        stem="imagenet",
        stem_width=64,
        use_shortcuts=None,
        block_attention=None,
        attention_reduction=16,
        input_shape=(None, None, 3),
        dtype=None,
        connection=None,
        layerscale_epsilon=DEFAULT_LAYERSCALE_EPSILON,
        expansion_rate=DEFAULT_EXPANSION_RATE,
        **kwargs,
    ):
        stage_blocks = _positive_int_tuple("stage_blocks", stage_blocks)
        stage_widths = _positive_int_tuple("stage_widths", stage_widths)
        if len(stage_blocks) != len(stage_widths):
            raise ValueError(
                "`stage_blocks` and `stage_widths` need one entry per stage. "
                f"Received {len(stage_blocks)} and {len(stage_widths)} entries: "
                f"{stage_blocks}, {stage_widths}"
            )
        validate_stem(stem)
        validate_block_attention(block_attention)
        connection = resolve_connection(use_shortcuts, connection)
        validate_layerscale_epsilon(layerscale_epsilon)
        validate_expansion_rate(expansion_rate)
        input_shape = _validate_input_shape(input_shape, stem, len(stage_blocks))

        # === Layers ===
        stem_layer = ResNetStem(stem, stem_width, dtype=dtype, name="stem")
        stages = [
            ResNetStage(
                width,
                num_blocks=num_blocks,
                strides=1 if index == 0 else 2,
                block_attention=block_attention,
                attention_reduction=attention_reduction,
                connection=connection,
                layerscale_epsilon=layerscale_epsilon,
                expansion_rate=expansion_rate,
                dtype=dtype,
                name=f"stage{index + 1}",
            )
            for index, (num_blocks, width) in enumerate(
                zip(stage_blocks, stage_widths)
            )
        ]

        # === Functional model ===
        images = keras.Input(shape=input_shape, name="images")
        x = stem_layer(images)
        taps = {"stem": x}
        for stage in stages:
            x = stage(x)
            taps[stage.name] = x
        super().__init__(inputs=images, outputs=taps, dtype=dtype, **kwargs)

        # === Config ===
        self.stage_blocks = stage_blocks
        self.stage_widths = stage_widths
        self.stem = stem
        self.stem_width = stem_width
        self.connection = connection
        self.layerscale_epsilon = layerscale_epsilon
        self.expansion_rate = expansion_rate
        self.block_attention = block_attention
        self.attention_reduction = attention_reduction
        self.image_shape = input_shape

        reduction = stem_layer.reduction
        tap_info = [TapInfo("stem", stem_width, reduction)]
        for stage in stages:
            reduction *= stage.strides
            tap_info.append(TapInfo(stage.name, stage.filters, reduction))
        self.tap_info = tuple(tap_info)

    @property
    def use_shortcuts(self):
        """Whether block inputs reach block outputs past the convolutions."""
        return self.connection != "none"

    def connection_parameters(self, images=None):
        """The learned skip-connection values of every stage, as
        `{"stage2/block1/alpha": value, ...}` (see
        `ResNetStage.connection_parameters`); with `images`, also the
        input-dependent ones (Highway gates, AttnRes weights), measured in
        inference mode. Empty for "identity" and "none"."""
        values = {}
        x = None
        if images is not None:
            x = self.get_layer("stem")(images, training=False)
        for tap in self.tap_info[1:]:
            stage = self.get_layer(tap.name)
            for key, value in stage.connection_parameters(x).items():
                values[f"{stage.name}/{key}"] = value
            if x is not None:
                x = stage(x, training=False)
        return values

    @property
    def tap_names(self):
        return tuple(tap.name for tap in self.tap_info)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "stage_blocks": list(self.stage_blocks),
            "stage_widths": list(self.stage_widths),
            "stem": self.stem,
            "stem_width": self.stem_width,
            "block_attention": self.block_attention,
            "attention_reduction": self.attention_reduction,
            "input_shape": list(self.image_shape),
            "connection": self.connection,
            "layerscale_epsilon": self.layerscale_epsilon,
            "expansion_rate": self.expansion_rate,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
