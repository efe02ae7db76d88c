import numpy as np
import pytest

import numpy_reference as ref
from keras_gradattn.layers import BasicBlock
from keras_gradattn.layers import ConvolutionalBlockAttention
from keras_gradattn.layers import ResNetStage
from keras_gradattn.layers import ResNetStem
from keras_gradattn.layers import SqueezeExcitation
from keras_gradattn.layers.resnet_blocks import BATCH_NORM_EPSILON
from testing_utils import assert_serializable
from testing_utils import randomize_weights
from testing_utils import to_numpy
from testing_utils import weights_of


def images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def reference_bn(x, w, prefix):
    return ref.batch_norm(
        x, w[f"{prefix}/gamma"], w[f"{prefix}/beta"], w[f"{prefix}/moving_mean"],
        w[f"{prefix}/moving_variance"], BATCH_NORM_EPSILON,
    )


@pytest.mark.parametrize("size", [28, 32, 33])
def test_imagenet_stem_matches_pytorch_padding(size):
    stem = ResNetStem("imagenet", filters=4, name="stem")
    x = images((2, size, size, 3))
    stem(x)
    randomize_weights(stem)
    w = weights_of(stem)
    expected = ref.conv2d(x, w["conv/kernel"], stride=2, padding=3)
    expected = ref.max_pool(ref.relu(reference_bn(expected, w, "bn")))
    output = to_numpy(stem(x, training=False))
    assert output.shape == expected.shape == (2, -(-size // 4), -(-size // 4), 4)
    np.testing.assert_allclose(output, expected, atol=1e-4)


def test_cifar_stem_keeps_resolution():
    stem = ResNetStem("cifar", filters=4, name="stem")
    x = images((1, 9, 9, 1))
    stem(x)
    randomize_weights(stem)
    w = weights_of(stem)
    expected = ref.relu(reference_bn(ref.conv2d(x, w["conv/kernel"], padding=1), w, "bn"))
    np.testing.assert_allclose(to_numpy(stem(x)), expected, atol=1e-4)
    assert stem.reduction == 1


def test_stem_rejects_unknown_kind():
    with pytest.raises(ValueError, match="Unknown `stem`: 'tiny'"):
        ResNetStem("tiny")


def reference_block(x, w, strides, use_shortcut, attention=None):
    y = ref.relu(reference_bn(ref.conv2d(x, w["conv1/kernel"], strides, 1), w, "bn1"))
    y = reference_bn(ref.conv2d(y, w["conv2/kernel"], 1, 1), w, "bn2")
    if attention == "se":
        y = ref.squeeze_excitation(y, w["se/squeeze/kernel"], w["se/excite/kernel"])
    if use_shortcut:
        shortcut = x
        if "shortcut_conv/kernel" in w:
            shortcut = reference_bn(
                ref.conv2d(x, w["shortcut_conv/kernel"], strides), w, "shortcut_bn"
            )
        y = y + shortcut
    return ref.relu(y)


@pytest.mark.parametrize("use_shortcut", [True, False], ids=["residual", "plain"])
@pytest.mark.parametrize("strides, filters", [(1, 3), (2, 5)], ids=["identity", "projection"])
@pytest.mark.parametrize("attention", [None, "se"])
def test_basic_block_matches_reference(use_shortcut, strides, filters, attention):
    block = BasicBlock(filters, strides=strides, use_shortcut=use_shortcut,
                       attention=attention, attention_reduction=2, name="block")
    x = images((2, 8, 8, 3), seed=1)
    block(x)
    randomize_weights(block, seed=2)
    w = weights_of(block)
    has_projection = any(k.startswith("shortcut_conv") for k in w)
    assert has_projection == (use_shortcut and (strides != 1 or filters != 3))
    expected = reference_block(x, w, strides, use_shortcut, attention)
    output = to_numpy(block(x, training=False))
    assert output.shape == block.compute_output_shape(x.shape) == expected.shape
    np.testing.assert_allclose(output, expected, atol=1e-4)


def test_plain_block_has_only_the_two_convolutions():
    block = BasicBlock(8, strides=2, use_shortcut=False)
    block.build((None, 8, 8, 4))
    assert sorted({w.path.split("/")[-2] for w in block.weights}) == [
        "bn1", "bn2", "conv1", "conv2"]


def test_squeeze_excitation_matches_reference():
    layer = SqueezeExcitation(reduction=4, name="se")
    x = images((2, 3, 3, 8), seed=3)
    layer(x)
    randomize_weights(layer, seed=4)
    w = weights_of(layer)
    assert [k for k in w] == ["squeeze/kernel", "excite/kernel"]  # no biases
    expected = ref.squeeze_excitation(x, w["squeeze/kernel"], w["excite/kernel"])
    np.testing.assert_allclose(to_numpy(layer(x)), expected, atol=1e-5)


def test_cbam_matches_reference():
    layer = ConvolutionalBlockAttention(reduction=4, name="cbam")
    x = images((2, 9, 9, 8), seed=5)
    layer(x)
    randomize_weights(layer, seed=6)
    w = weights_of(layer)
    assert w["spatial_conv/kernel"].shape == (7, 7, 2, 1)
    expected = ref.cbam(
        x, w["channel_squeeze/kernel"], w["channel_excite/kernel"], w["spatial_conv/kernel"]
    )
    np.testing.assert_allclose(to_numpy(layer(x)), expected, atol=1e-5)


def test_stage_chains_blocks_and_downsamples_once():
    stage = ResNetStage(6, num_blocks=3, strides=2, use_shortcuts=False, name="stage2")
    x = images((1, 8, 8, 4))
    y = stage(x)
    assert tuple(y.shape) == (1, 4, 4, 6)
    assert [b.strides for b in stage.blocks] == [2, 1, 1]
    assert stage.weights[0].path == "stage2/block1/conv1/kernel"


@pytest.mark.parametrize(
    "layer",
    [
        ResNetStem("cifar", filters=4),
        BasicBlock(4, strides=2, use_shortcut=False, attention="cbam"),
        ResNetStage(4, num_blocks=2, strides=2, block_attention="se"),
        SqueezeExcitation(reduction=8),
        ConvolutionalBlockAttention(reduction=8, spatial_kernel_size=3),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_block_configs_round_trip(layer):
    clone = assert_serializable(layer)
    x = images((1, 8, 8, 4), seed=7)
    layer(x)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(clone(x)), to_numpy(layer(x)), atol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: BasicBlock(4, attention="eca"), "Unknown `block_attention`: 'eca'"),
        (lambda: SqueezeExcitation(reduction=0), "reduction"),
        (lambda: ResNetStage(4, num_blocks=0), "num_blocks"),
    ],
)
def test_blocks_reject_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
