"""The learned skip connections: each layer against a NumPy reference with
random weights, each method's defining property at initialisation, and the
errors for bad arguments."""

import numpy as np
import pytest

import numpy_reference as ref
from keras_gradattn.layers import AttentionResidual
from keras_gradattn.layers import BasicBlock
from keras_gradattn.layers import DepthWeightedAverage
from keras_gradattn.layers import HyperConnection
from keras_gradattn.layers import ResNetStage
from keras_gradattn.layers.resnet_blocks import BATCH_NORM_EPSILON
from keras_gradattn.layers.resnet_blocks import CONNECTIONS
from keras_gradattn.layers.resnet_blocks import resolve_connection
from testing_utils import assert_serializable
from testing_utils import randomize_weights
from testing_utils import to_numpy
from testing_utils import weights_of


def maps(count, shape=(2, 5, 5, 4), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype("float32") for _ in range(count)]


def reference_attention_weights(sources, query, scale, epsilon):
    pooled = np.stack([s.astype(np.float64).mean(axis=(1, 2)) for s in sources], axis=1)
    keys = pooled / np.sqrt(np.mean(pooled**2, axis=-1, keepdims=True) + epsilon) * scale
    return ref.softmax(keys @ query, axis=-1)  # (batch, sources)


# DepthWeightedAverage ---------------------------------------------------------


def test_depth_weighted_average_starts_as_its_newest_input():
    sources = maps(3)
    layer = DepthWeightedAverage(3)
    np.testing.assert_allclose(to_numpy(layer(sources)), sources[-1], atol=1e-6)
    np.testing.assert_array_equal(to_numpy(layer.depth_weights), [0.0, 0.0, 1.0])


def test_depth_weighted_average_matches_reference():
    sources = maps(3)
    layer = DepthWeightedAverage(3)
    layer(sources)
    randomize_weights(layer, seed=3)
    weights = to_numpy(layer.depth_weights)
    expected = sum(w * s for w, s in zip(weights, sources))
    np.testing.assert_allclose(to_numpy(layer(sources)), expected, atol=1e-5)


# AttentionResidual ------------------------------------------------------------


def test_attention_residual_starts_uniform():
    sources = maps(3)
    layer = AttentionResidual()
    output = to_numpy(layer(sources))
    np.testing.assert_allclose(to_numpy(layer.depth_weights(sources)), np.full((2, 3), 1 / 3), atol=1e-6)
    np.testing.assert_allclose(output, sum(sources) / 3, atol=1e-5)


def test_attention_residual_matches_reference():
    sources = maps(3, seed=1)
    layer = AttentionResidual(epsilon=1e-3)
    layer(sources)
    randomize_weights(layer, seed=4, scale=1.0)
    w = weights_of(layer)
    weights = reference_attention_weights(sources, w["query"], w["key_scale"], 1e-3)
    # Per example: the weights differ between the two examples of the batch.
    assert not np.allclose(weights[0], weights[1], atol=1e-3)
    expected = sum(weights[:, i, None, None, None] * s for i, s in enumerate(sources))
    np.testing.assert_allclose(to_numpy(layer.depth_weights(sources)), weights, atol=1e-5)
    np.testing.assert_allclose(to_numpy(layer(sources)), expected, atol=1e-5)


# HyperConnection --------------------------------------------------------------


@pytest.mark.parametrize("block_index", [0, 1, 2])
def test_hyper_connection_initialisation(block_index):
    layer = HyperConnection(2, block_index=block_index)
    layer.build()
    width = np.zeros(2)
    width[block_index % 2] = 1.0
    np.testing.assert_array_equal(to_numpy(layer.width_weights), width)
    np.testing.assert_array_equal(to_numpy(layer.stream_mixing), np.eye(2))
    np.testing.assert_array_equal(to_numpy(layer.depth_weights), np.ones(2))


def test_hyper_connection_matches_reference():
    streams, (block_output,) = maps(3), maps(1, seed=5)
    layer = HyperConnection(3, block_index=1)
    layer.build()
    randomize_weights(layer, seed=6)
    w = weights_of(layer)
    expected_read = sum(w["width_weights"][j] * streams[j] for j in range(3))
    np.testing.assert_allclose(to_numpy(layer.read(streams)), expected_read, atol=1e-5)
    written = [to_numpy(s) for s in layer([streams, block_output])]
    for j in range(3):
        expected = w["depth_weights"][j] * block_output + sum(
            w["stream_mixing"][i, j] * streams[i] for i in range(3)
        )
        np.testing.assert_allclose(written[j], expected, atol=1e-5)


@pytest.mark.parametrize(
    "layer",
    [DepthWeightedAverage(4), AttentionResidual(epsilon=1e-4), HyperConnection(3, block_index=2)],
    ids=["dwa", "attnres", "hyper"],
)
def test_layers_are_serializable(layer):
    assert_serializable(layer)


# Per-block connections --------------------------------------------------------


def reference_bn(x, w, prefix):
    return ref.batch_norm(
        x, w[f"{prefix}/gamma"], w[f"{prefix}/beta"], w[f"{prefix}/moving_mean"],
        w[f"{prefix}/moving_variance"], BATCH_NORM_EPSILON,
    )


def reference_connection_block(x, w, strides, connection):
    branch = ref.relu(reference_bn(ref.conv2d(x, w["conv1/kernel"], strides, 1), w, "bn1"))
    branch = reference_bn(ref.conv2d(branch, w["conv2/kernel"], 1, 1), w, "bn2")
    shortcut = x
    if "shortcut_conv/kernel" in w:
        shortcut = reference_bn(ref.conv2d(x, w["shortcut_conv/kernel"], strides, 0), w, "shortcut_bn")
    if connection == "rezero":
        return ref.relu(shortcut + w["rezero_alpha"] * branch)
    if connection == "layerscale":
        return ref.relu(shortcut + w["layerscale_gamma"] * branch)
    gate = ref.sigmoid(ref.conv2d(x, w["highway_gate/kernel"], strides, 0, bias=w["highway_gate/bias"]))
    return ref.relu(gate * branch + (1 - gate) * shortcut)


@pytest.mark.parametrize("connection", ["rezero", "layerscale", "highway"])
@pytest.mark.parametrize("strides, filters", [(1, 3), (2, 4)], ids=["same", "projection"])
def test_block_connection_matches_reference(connection, strides, filters):
    block = BasicBlock(filters, strides=strides, connection=connection)
    x = maps(1, shape=(2, 6, 6, 3), seed=2)[0]
    block(x)
    randomize_weights(block, seed=7)
    w = weights_of(block)
    assert ("shortcut_conv/kernel" in w) == (strides == 2)
    expected = reference_connection_block(x, w, strides, connection)
    np.testing.assert_allclose(to_numpy(block(x, training=False)), expected, atol=1e-4)


def test_rezero_block_starts_as_the_identity():
    x = np.abs(maps(1, shape=(2, 6, 6, 4))[0])  # block inputs follow a ReLU
    block = BasicBlock(4, connection="rezero")
    np.testing.assert_allclose(to_numpy(block(x, training=True)), x, atol=1e-6)
    assert float(to_numpy(block.rezero_alpha)) == 0.0


def test_layerscale_block_starts_near_the_identity():
    x = np.abs(maps(1, shape=(2, 6, 6, 4))[0])
    block = BasicBlock(4, connection="layerscale", layerscale_epsilon=1e-3)
    output = to_numpy(block(x, training=True))
    np.testing.assert_allclose(to_numpy(block.layerscale_gamma), np.full(4, 1e-3))
    assert 0 < np.max(np.abs(output - x)) < 1e-2


def test_highway_gate_starts_near_carry():
    x = np.abs(maps(1, shape=(4, 8, 8, 4), seed=3)[0])
    block = BasicBlock(8, strides=2, connection="highway")
    block(x)
    gate = to_numpy(block.highway_gate(x))
    np.testing.assert_allclose(gate.mean(), ref.sigmoid(-2.0), atol=1e-3)
    assert gate.shape == (4, 4, 4, 8)


# Stage-level connections ------------------------------------------------------


def copy_shared_weights(source, target):
    """Copies every weight of `source` to the weight of `target` with the same
    relative path; returns the paths of `target` that had no counterpart."""
    values = weights_of(source)
    prefix = target.path + "/"
    unmatched = []
    for weight in target.weights:
        key = weight.path[len(prefix):]
        if key in values:
            weight.assign(values[key].astype(weight.dtype))
        else:
            unmatched.append(key)
    return unmatched


@pytest.mark.parametrize("connection", ["dwa", "hyper"])
@pytest.mark.parametrize("training", [False, True])
def test_stage_starts_as_the_residual_stage(connection, training):
    # DWA's weights give the plain residual stream; hyper-connections'
    # streams all stay the residual stream.
    x = np.abs(maps(1, shape=(2, 8, 8, 3), seed=4)[0])
    residual = ResNetStage(4, num_blocks=3, strides=2, connection="identity", name="stage")
    learned = ResNetStage(4, num_blocks=3, strides=2, connection=connection, name="stage",
                          **({"expansion_rate": 2} if connection == "hyper" else {}))
    residual(x)
    learned(x)
    randomize_weights(residual, seed=8)
    unmatched = copy_shared_weights(residual, learned)
    assert unmatched and all(f"_{connection}/" in path for path in unmatched)
    np.testing.assert_allclose(
        to_numpy(learned(x, training=training)), to_numpy(residual(x, training=training)), atol=1e-4
    )


def test_attention_residual_stage_averages_uniformly_at_start():
    x = np.abs(maps(1, shape=(2, 8, 8, 3), seed=5)[0])
    stage = ResNetStage(4, num_blocks=2, strides=2, connection="attnres", name="stage")
    stage(x)
    randomize_weights(stage.blocks[0], seed=9)
    randomize_weights(stage.blocks[1], seed=10)
    first, second = stage.blocks
    source = to_numpy(first.project(x))
    y1 = to_numpy(first(x))
    mid = (source + y1) / 2
    y2 = to_numpy(second(mid.astype("float32")))
    expected = (source + y1 + y2) / 3
    np.testing.assert_allclose(to_numpy(stage(x, training=False)), expected, atol=1e-4)


@pytest.mark.parametrize("connection", CONNECTIONS)
def test_stages_of_every_connection_are_serializable(connection):
    stage = ResNetStage(4, num_blocks=2, strides=2, connection=connection, name="stage")
    stage(np.zeros((1, 4, 4, 3), "float32"))
    clone = assert_serializable(stage)
    assert clone.connection == connection


def test_older_use_shortcut_configs_still_load():
    old = {"name": "block1", "filters": 4, "strides": 1, "use_shortcut": False,
           "attention": None, "attention_reduction": 16}
    assert BasicBlock.from_config(old).connection == "none"
    old_stage = {"name": "stage1", "filters": 4, "num_blocks": 2, "strides": 1,
                 "use_shortcuts": True, "block_attention": None, "attention_reduction": 16}
    assert ResNetStage.from_config(old_stage).connection == "identity"


# Bad arguments ----------------------------------------------------------------


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: BasicBlock(4, connection="densenet"),
         r"Unknown `connection`: 'densenet'. Allowed: 'identity', 'none', 'rezero', 'layerscale', "
         r"'highway', 'dwa', 'attnres', 'hyper'\."),
        (lambda: BasicBlock(4, connection="layerscale", layerscale_epsilon=-1e-6),
         r"`layerscale_epsilon` .* must be a number >= 0. Received: -1e-06"),
        (lambda: ResNetStage(4, connection="hyper", expansion_rate=0),
         r"`expansion_rate` .* must be an integer >= 1. Received: 0"),
        (lambda: HyperConnection(1.5), r"must be an integer >= 1. Received: 1.5"),
        (lambda: DepthWeightedAverage(0), r"`num_inputs` must be a positive integer. Received: 0"),
        (lambda: AttentionResidual(epsilon=0), r"must be a positive number. Received: 0"),
        (lambda: ResNetStage(4, use_shortcuts=False, connection="rezero"),
         r"`use_shortcuts=False` contradicts `connection='rezero'`"),
    ],
)
def test_bad_arguments_are_explained(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_resolve_connection():
    assert resolve_connection() == "identity"
    assert resolve_connection(False) == "none"
    assert resolve_connection(True, "hyper") == "hyper"
    assert resolve_connection(None, "none") == "none"
    with pytest.raises(ValueError, match="contradicts"):
        resolve_connection(True, "none")


def test_depth_weighted_average_rejects_a_wrong_number_of_inputs():
    layer = DepthWeightedAverage(2)
    with pytest.raises(ValueError, match="built for 2 feature maps. Received: 3"):
        layer(maps(3))
