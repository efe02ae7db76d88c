"""Training augmentation recipes, built from Keras preprocessing layers.

Every recipe works on float images in [0, 1] (before normalisation) and keeps
them there: geometric layers resample (nearest or bilinear: convex
combinations of input pixels) and fill with 0 or edge pixels; colour layers
are given `value_range=(0, 1)` and clip to it. The pipeline still clips once
after augmentation as a guard against rounding.

Parameters follow the reference's torchvision transforms
(docs/paper.md#datasets-and-splits); where Keras' layer differs from torchvision's, the comment says how.
"""

import numpy as np

import keras

from keras_gradattn.data import registry
from keras_gradattn.data.augmentation_layers import RandomPadCrop
from keras_gradattn.data.augmentation_layers import RandomResizedCrop

# torchvision's RandomRotation(10): +-10 degrees. Keras takes a fraction of a
# full turn.
ROTATION_10_DEGREES = 10.0 / 360.0


def _rotation(seed):
    # torchvision rotates with nearest-neighbour sampling and fills with 0.
    return keras.layers.RandomRotation(
        ROTATION_10_DEGREES,
        fill_mode="constant",
        fill_value=0.0,
        interpolation="nearest",
        seed=seed,
    )


def _recipe_layers(recipe, seeds):
    seeds = iter(seeds)
    if recipe == registry.NO_AUGMENTATION:
        return []
    if recipe == registry.FLIP_PAD_CROP:
        # RandomHorizontalFlip + RandomCrop(32, padding=4).
        return [
            keras.layers.RandomFlip("horizontal", seed=next(seeds)),
            RandomPadCrop(padding=4, seed=next(seeds)),
        ]
    if recipe in (registry.FLIP_ROTATE_TRANSLATE, registry.ROTATE_TRANSLATE):
        layers = []
        if recipe == registry.FLIP_ROTATE_TRANSLATE:
            layers.append(keras.layers.RandomFlip("horizontal", seed=next(seeds)))
        # RandomRotation(10) + RandomAffine(translate=(0.1, 0.1)).
        layers += [
            _rotation(next(seeds)),
            keras.layers.RandomTranslation(
                0.1,
                0.1,
                fill_mode="constant",
                fill_value=0.0,
                interpolation="nearest",
                seed=next(seeds),
            ),
        ]
        return layers
    if recipe == registry.MEDMNIST_JITTER:
        # RandomRotation(10), RandomHorizontalFlip, ColorJitter(0.1, 0.1).
        # Keras' brightness is additive (+-0.1 of the range) where
        # torchvision's multiplies by [0.9, 1.1]; contrast matches
        # (factor in [0.9, 1.1] around the per-channel mean).
        return [
            _rotation(next(seeds)),
            keras.layers.RandomFlip("horizontal", seed=next(seeds)),
            keras.layers.RandomBrightness(0.1, value_range=(0.0, 1.0), seed=next(seeds)),
            keras.layers.RandomContrast(0.1, value_range=(0.0, 1.0), seed=next(seeds)),
        ]
    if recipe == registry.DERMOSCOPY_JITTER_CROP:
        # RandomHorizontalFlip, RandomRotation(10),
        # ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.1),
        # RandomResizedCrop(224, scale=(0.8, 1.0)).
        # Keras' saturation factor f scales saturation by f / (1 - f):
        # (0.4444, 0.5455) gives torchvision's [0.8, 1.2]. Keras' hue factor
        # f shifts hue by up to f / 2 of a turn: 0.2 gives torchvision's 0.1.
        return [
            keras.layers.RandomFlip("horizontal", seed=next(seeds)),
            _rotation(next(seeds)),
            keras.layers.RandomColorJitter(
                value_range=(0.0, 1.0),
                brightness_factor=0.2,
                contrast_factor=0.2,
                saturation_factor=(0.8 / 1.8, 1.2 / 2.2),
                hue_factor=0.2,
                seed=next(seeds),
            ),
            RandomResizedCrop(scale=(0.8, 1.0), ratio=(3 / 4, 4 / 3), seed=next(seeds)),
        ]
    raise ValueError(
        f"Unknown augmentation recipe {recipe!r}; expected one of "
        f"{registry.AUGMENTATION_RECIPES}."
    )


class Augmenter:
    """Applies a recipe's layers in order to a batch of [0, 1] float images.

    Works on the active Keras backend and inside `tf.data` (the layers switch
    to TensorFlow ops there). Each layer has its own seed, derived from
    `seed` with NumPy's `SeedSequence`, so layers draw independently and the
    same seed replays the same augmentations.
    """

    def __init__(self, recipe, seed=None):
        self.recipe = recipe
        entropy = 0 if seed is None else seed
        # 31-bit seeds: Keras keeps seed state as int32 (PyTorch refuses to
        # wrap larger values).
        layer_seeds = [
            int(value) >> 1 for value in np.random.SeedSequence(entropy).generate_state(8)
        ]
        if seed is None:
            layer_seeds = [None] * 8
        self.layers = _recipe_layers(recipe, layer_seeds)

    def __bool__(self):
        return bool(self.layers)

    def __call__(self, images):
        for layer in self.layers:
            images = layer(images, training=True)
        return images

    def __repr__(self):
        names = ", ".join(type(layer).__name__ for layer in self.layers)
        return f"Augmenter({self.recipe!r}: [{names}])"


def build_augmentation(spec, seed=None):
    """The training `Augmenter` for `spec` (empty when the recipe is `"none"`)."""
    return Augmenter(spec.augmentation, seed)
