import numpy as np
import pytest

import numpy_reference as ref
from keras_gradattn.layers import RotaryEmbedding
from testing_utils import assert_serializable
from testing_utils import to_numpy


def test_matches_rotate_half_reference():
    x = np.random.default_rng(0).normal(size=(2, 5, 3, 8)).astype("float32")
    output = RotaryEmbedding()(x)
    assert tuple(output.shape) == x.shape
    np.testing.assert_allclose(to_numpy(output), ref.rotary(x), atol=1e-5)


def test_first_position_is_unrotated_and_norms_are_kept():
    x = np.random.default_rng(1).normal(size=(1, 4, 2, 6)).astype("float32")
    output = to_numpy(RotaryEmbedding()(x))
    np.testing.assert_allclose(output[:, 0], x[:, 0], atol=1e-6)
    np.testing.assert_allclose(
        np.linalg.norm(output, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5
    )


def test_dot_product_depends_on_relative_position_only():
    rng = np.random.default_rng(2)
    query, key = rng.normal(size=(2, 8)).astype("float32")
    # The same query and key placed at every position of a 6-token sequence.
    rotate = RotaryEmbedding()
    queries = to_numpy(rotate(np.tile(query, (1, 6, 1, 1))))[0, :, 0]
    keys = to_numpy(rotate(np.tile(key, (1, 6, 1, 1))))[0, :, 0]
    scores = queries @ keys.T
    np.testing.assert_allclose(scores[1, 0], scores[5, 4], rtol=1e-4)
    np.testing.assert_allclose(scores[0, 2], scores[3, 5], rtol=1e-4)


def test_odd_head_dim_is_rejected():
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding()(np.zeros((1, 3, 2, 5), "float32"))


def test_config_round_trip():
    layer = RotaryEmbedding(max_wavelength=500)
    clone = assert_serializable(layer)
    x = np.random.default_rng(3).normal(size=(1, 3, 1, 4)).astype("float32")
    np.testing.assert_allclose(to_numpy(clone(x)), ref.rotary(x, base=500), atol=1e-5)


def test_rejects_bad_wavelength():
    with pytest.raises(ValueError, match="max_wavelength"):
        RotaryEmbedding(max_wavelength=1)
