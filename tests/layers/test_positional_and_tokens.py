import numpy as np
import pytest

from keras_gradattn.layers import LearnedPositionalEmbedding
from keras_gradattn.layers import TapTokenizer
from testing_utils import assert_serializable
from testing_utils import randomize_weights
from testing_utils import to_numpy


def test_positional_embedding_adds_a_table_per_position():
    layer = LearnedPositionalEmbedding()
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    output = to_numpy(layer(x))
    table = to_numpy(layer.embedding)
    assert table.shape == (1, 5, 4)
    np.testing.assert_allclose(output, x + table, atol=1e-6)


def test_positional_embedding_is_initialised_standard_normal():
    layer = LearnedPositionalEmbedding()
    layer.build((None, 5, 2000))
    table = to_numpy(layer.embedding)
    # The reference uses N(0, 1); Keras' default random_normal has std 0.05.
    assert 0.95 < table.std() < 1.05
    assert abs(table.mean()) < 0.05


def test_positional_embedding_config_round_trip():
    layer = LearnedPositionalEmbedding(initializer="zeros")
    clone = assert_serializable(layer)
    clone.build((None, 2, 3))
    assert np.all(to_numpy(clone.embedding) == 0)


def test_positional_embedding_needs_known_sequence_length():
    with pytest.raises(ValueError, match="num_tokens"):
        LearnedPositionalEmbedding().build((None, None, 4))


def test_tap_tokenizer_pools_and_projects_each_tap():
    rng = np.random.default_rng(1)
    taps = [
        rng.normal(size=(2, 4, 4, 3)).astype("float32"),
        rng.normal(size=(2, 2, 2, 5)).astype("float32"),
        rng.normal(size=(2, 1, 1, 7)).astype("float32"),
    ]
    layer = TapTokenizer(token_dim=6)
    tokens = layer(taps)
    assert tuple(tokens.shape) == (2, 3, 6)
    assert layer.compute_output_shape([t.shape for t in taps]) == (2, 3, 6)
    randomize_weights(layer)
    tokens = to_numpy(layer(taps))
    for index, (tap, projection) in enumerate(zip(taps, layer.projections)):
        kernel, bias = (to_numpy(w) for w in projection.weights)
        expected = tap.mean(axis=(1, 2)) @ kernel + bias
        np.testing.assert_allclose(tokens[:, index], expected, atol=1e-5)


def test_tap_tokenizer_weight_paths_and_config():
    layer = TapTokenizer(token_dim=4, name="tap_tokenizer")
    layer([np.zeros((1, 2, 2, 3), "float32"), np.zeros((1, 1, 1, 5), "float32")])
    assert [w.path for w in layer.weights] == [
        "tap_tokenizer/projection1/kernel",
        "tap_tokenizer/projection1/bias",
        "tap_tokenizer/projection2/kernel",
        "tap_tokenizer/projection2/bias",
    ]
    assert_serializable(layer)


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_tap_tokenizer_rejects_bad_width(bad):
    with pytest.raises(ValueError, match="token_dim"):
        TapTokenizer(token_dim=bad)


def test_tap_tokenizer_rejects_non_image_taps():
    with pytest.raises(ValueError, match="feature maps"):
        TapTokenizer(token_dim=4)([np.zeros((1, 3), "float32")])
