import keras
import numpy as np
import pytest

from keras_gradattn.models import ResNetBackbone
from keras_gradattn.models import TapInfo
from keras_gradattn.models.resnet_backbone import minimum_input_size
from testing_utils import SMALL_BACKBONE


@pytest.mark.parametrize("size", [28, 32, 64, 96])
@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
def test_every_declared_tap_has_its_declared_shape(size, stem):
    backbone = ResNetBackbone(stem=stem, input_shape=(size, size, 3), **SMALL_BACKBONE)
    taps = backbone(np.zeros((2, size, size, 3), "float32"))
    # Dict order differs between backends (torch sorts keys): taps are
    # addressed by name, and `tap_names` gives depth order.
    assert sorted(taps) == sorted(backbone.tap_names)
    for tap in backbone.tap_info:
        side = -(-size // tap.reduction)  # ceil: PyTorch's padding keeps the edge
        assert tuple(taps[tap.name].shape) == (2, side, side, tap.channels), tap


def test_paper_spatial_sizes_per_tap():
    # Reference: 28 -> 7,7,4,2,1; 32 -> 8,8,4,2,1; 64 -> 16,16,8,4,2; 224 -> 56,56,28,14,7.
    expected = {28: [7, 7, 4, 2, 1], 32: [8, 8, 4, 2, 1], 64: [16, 16, 8, 4, 2],
                224: [56, 56, 28, 14, 7]}
    for size, sides in expected.items():
        backbone = ResNetBackbone(input_shape=(size, size, 1), **SMALL_BACKBONE)
        assert [backbone.output[name].shape[1] for name in backbone.tap_names] == sides


def test_tap_info_describes_channels_and_reduction():
    backbone = ResNetBackbone(use_shortcuts=False, input_shape=(32, 32, 3))
    assert backbone.tap_info == (
        TapInfo("stem", 64, 4), TapInfo("stage1", 64, 4), TapInfo("stage2", 128, 8),
        TapInfo("stage3", 256, 16), TapInfo("stage4", 512, 32),
    )


def test_resnet34_layout_and_weight_paths():
    backbone = ResNetBackbone(stage_blocks=(3, 4, 6, 3), input_shape=(32, 32, 3),
                              **SMALL_BACKBONE)
    blocks = {w.path.rsplit("/", 2)[0] for w in backbone.weights if "/block" in w.path}
    assert sorted(blocks)[:3] == ["stage1/block1", "stage1/block2", "stage1/block3"]
    assert len(blocks) == 3 + 4 + 6 + 3


def test_variable_input_size_is_allowed():
    backbone = ResNetBackbone(input_shape=(None, None, 3), **SMALL_BACKBONE)
    taps = backbone(np.zeros((1, 40, 48, 3), "float32"))
    assert tuple(taps["stage4"].shape) == (1, 2, 2, 32)


def test_minimum_input_size_rule():
    # Each of n stride-2 steps (ceil halving) needs >= 2 pixels.
    assert [minimum_input_size(n) for n in range(6)] == [1, 2, 3, 5, 9, 17]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (16, 16, 3)}, r"too small for the 'imagenet' stem.*>= 17"),
        ({"input_shape": (4, 4, 3), "stem": "cifar"}, r"too small for the 'cifar' stem.*>= 5"),
        ({"input_shape": (32, 32)}, r"\(height, width, channels\).*rank 2"),
        ({"input_shape": (1, 32, 32, 3)}, r"rank 4"),
        ({"input_shape": (32, 32, None)}, "channels must be known"),
        ({"stage_blocks": (2, 2), "stage_widths": (8, 8, 8)}, "one entry per stage"),
        ({"stage_blocks": (2, 0, 2, 2)}, "positive integers"),
        ({"stem": "vit"}, "Unknown `stem`: 'vit'"),
        ({"block_attention": "eca"}, "Unknown `block_attention`"),
    ],
)
def test_bad_arguments_are_explained(kwargs, message):
    kwargs.setdefault("input_shape", (32, 32, 3))
    with pytest.raises(ValueError, match=message):
        ResNetBackbone(**kwargs)


def test_config_round_trip_rebuilds_the_same_backbone():
    backbone = ResNetBackbone(stem="cifar", use_shortcuts=False, block_attention="cbam",
                              input_shape=(16, 16, 1), name="backbone", **SMALL_BACKBONE)
    config = backbone.get_config()
    clone = ResNetBackbone.from_config(config)
    assert clone.get_config() == config
    assert [w.path for w in clone.weights] == [w.path for w in backbone.weights]
    assert keras.saving.get_registered_name(ResNetBackbone) == "keras_gradattn>ResNetBackbone"
