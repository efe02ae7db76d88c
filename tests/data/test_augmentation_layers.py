import numpy as np
import pytest

import keras

from keras_gradattn.data import RandomPadCrop
from keras_gradattn.data import RandomResizedCrop


def _shifted(image, dx, dy):
    """`image` read at (x + dx, y + dy), zero outside: pad-and-crop by hand."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    return padded[4 + dy : 4 + dy + height, 4 + dx : 4 + dx + width]


def test_pad_crop_shifts_each_image_by_its_own_integer_offset():
    rng = np.random.default_rng(0)
    images = rng.uniform(0.01, 1.0, size=(16, 12, 12, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(RandomPadCrop(4, seed=1)(images, training=True))
    offsets = []
    for image, result in zip(images, out):
        matches = [
            (dx, dy) for dx in range(-4, 5) for dy in range(-4, 5)
            if np.allclose(result, _shifted(image, dx, dy), atol=1e-6)
        ]  # fmt: skip
        assert len(matches) == 1
        offsets.append(matches[0])
    # Keras' RandomCrop would give one offset for the whole batch.
    assert len(set(offsets)) > 4


def test_pad_crop_is_identity_outside_training():
    images = np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype("float32")
    out = RandomPadCrop(4, seed=0)(images, training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), images)


def test_resized_crop_zooms_in_and_keeps_range_and_shape():
    # A horizontal ramp: a crop of 80-100% of the area, resized to full size,
    # stretches it, so the spread of values can only shrink.
    ramp = np.tile(np.linspace(0, 1, 32, dtype="float32")[None, :, None], (32, 1, 3))
    images = np.stack([ramp] * 8)
    out = keras.ops.convert_to_numpy(RandomResizedCrop(seed=2)(images, training=True))
    assert out.shape == images.shape
    assert out.min() >= 0 and out.max() <= 1
    spans = out[:, 16, -1, 0] - out[:, 16, 0, 0]
    assert np.all(spans <= 1.0 + 1e-6) and np.all(spans >= 0.6)
    assert np.ptp(spans) > 0.01  # different crops per image


def test_layer_configs_round_trip_and_reject_bad_arguments():
    layer = RandomResizedCrop(scale=(0.5, 0.9), ratio=(0.5, 2.0), seed=3)
    clone = RandomResizedCrop.from_config(layer.get_config())
    assert clone.scale == (0.5, 0.9) and clone.ratio == (0.5, 2.0) and clone.seed == 3
    assert RandomPadCrop.from_config(RandomPadCrop(2).get_config()).padding == 2
    with pytest.raises(ValueError, match=r"scale must be .* got \(0.0, 1.0\)"):
        RandomResizedCrop(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="padding must be an integer >= 0, got -1"):
        RandomPadCrop(-1)
