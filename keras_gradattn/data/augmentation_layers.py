"""Per-image random crops that Keras core lacks, as backend-agnostic layers.

Keras core has no RandomResizedCrop, and its `RandomCrop` draws ONE offset
per batch, so every image of a batch would be shifted alike; torchvision's
`RandomCrop(32, padding=4)` and `RandomResizedCrop` draw per image. Both
layers here draw per image and apply the crop as one affine resampling
(`ops.image.affine_transform`), like Keras' own RandomTranslation.

They build on Keras' `DataLayer`, the base of its image preprocessing layers:
inside a `tf.data` pipeline it runs the layer with TensorFlow ops whatever the
Keras backend, elsewhere with the active backend (JAX, PyTorch), so the same
layer serves both input pipelines. That base class is not exported by Keras;
`keras_gradattn.utils.keras_internals` imports it.
"""

import math

import keras

from keras_gradattn.utils import keras_internals
from keras_gradattn.utils import register_serializable


class _PerImageAffineCrop(keras_internals.DataLayer):
    """Shared plumbing: seeds, rank handling, config."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self.supports_jit = False

    def _crop_transforms(self, batch_size, height, width, seed):
        raise NotImplementedError

    def call(self, images, training=True):
        if not training:
            return images
        backend = self.backend
        images = backend.convert_to_tensor(images, dtype=self.compute_dtype)
        unbatched = len(images.shape) == 3
        if unbatched:
            images = backend.numpy.expand_dims(images, 0)
        shape = backend.shape(images)
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            raise ValueError(
                f"{type(self).__name__} needs a static height and width, got "
                f"images of shape {images.shape}."
            )
        seed = keras_internals.data_layer_seed_generator(self)
        transforms, interpolation, fill_mode = self._crop_transforms(
            shape[0], height, width, seed
        )
        outputs = backend.image.affine_transform(
            images,
            transform=transforms,
            interpolation=interpolation,
            fill_mode=fill_mode,
            fill_value=0.0,
            data_format="channels_last",
        )
        return outputs[0] if unbatched else outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


@register_serializable
class RandomPadCrop(_PerImageAffineCrop):
    """Zero-pads each image by `padding` pixels, then crops it back to size.

    The same distribution as torchvision's `RandomCrop(size, padding=p)`:
    each image is shifted by an integer offset drawn uniformly from
    `-padding .. padding` per axis, the uncovered border filled with zeros
    (black on a [0, 1] image, so values never leave the input range).

    Args:
        padding: pixels of zero padding on every side, `>= 0`.
        seed: seed of the layer's random draws.
    """

    def __init__(self, padding=4, seed=None, **kwargs):
        if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
            raise ValueError(f"padding must be an integer >= 0, got {padding!r}.")
        super().__init__(seed=seed, **kwargs)
        self.padding = padding

    def _crop_transforms(self, batch_size, height, width, seed):
        ops = self.backend
        span = float(2 * self.padding + 1)
        shift_x = ops.numpy.floor(ops.random.uniform((batch_size,), 0.0, span, seed=seed))
        shift_y = ops.numpy.floor(ops.random.uniform((batch_size,), 0.0, span, seed=seed))
        shift_x = shift_x - self.padding
        shift_y = shift_y - self.padding
        ones = ops.numpy.ones_like(shift_x)
        zeros = ops.numpy.zeros_like(shift_x)
        # Output pixel (x, y) reads input pixel (x + shift_x, y + shift_y).
        transforms = ops.numpy.stack(
            [ones, zeros, shift_x, zeros, ones, shift_y, zeros, zeros], axis=1
        )
        return transforms, "nearest", "constant"

    def get_config(self):
        config = super().get_config()
        config["padding"] = self.padding
        return config


@register_serializable
class RandomResizedCrop(_PerImageAffineCrop):
    """Crops a random area and aspect ratio of each image, resized to full size.

    As torchvision's `RandomResizedCrop(size, scale, ratio)` on images already
    at `size`: per image, an area fraction is drawn from `scale` and a log-
    uniform aspect ratio (width / height) from `ratio`; the crop is placed
    uniformly at random and resampled bilinearly to the input size.
    torchvision retries up to 10 times when the box does not fit and then
    falls back to a centre crop; here the box sides are clipped to the image
    instead, which changes the area of a few extreme draws only.

    Edge pixels are extended (`fill_mode="nearest"`) so the resampling never
    mixes in a fill value; outputs are convex combinations of input pixels
    and stay within the input's value range.

    Args:
        scale: `(min, max)` fraction of the image area, `0 < min <= max <= 1`.
        ratio: `(min, max)` aspect ratio, `0 < min <= max`.
        seed: seed of the layer's random draws.
    """

    def __init__(self, scale=(0.8, 1.0), ratio=(3 / 4, 4 / 3), seed=None, **kwargs):
        scale, ratio = tuple(scale), tuple(ratio)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must be (min, max) with 0 < min <= max <= 1, got {scale}.")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (min, max) with 0 < min <= max, got {ratio}.")
        super().__init__(seed=seed, **kwargs)
        self.scale = scale
        self.ratio = ratio

    def _crop_transforms(self, batch_size, height, width, seed):
        ops = self.backend
        area = ops.random.uniform((batch_size,), self.scale[0], self.scale[1], seed=seed)
        log_ratio = ops.random.uniform(
            (batch_size,), math.log(self.ratio[0]), math.log(self.ratio[1]), seed=seed
        )
        aspect = ops.numpy.exp(log_ratio)
        # Crop sides as fractions of the image sides.
        crop_width = ops.numpy.minimum(ops.numpy.sqrt(area * aspect), 1.0)
        crop_height = ops.numpy.minimum(ops.numpy.sqrt(area / aspect), 1.0)
        start_x = ops.random.uniform((batch_size,), 0.0, 1.0, seed=seed) * (1.0 - crop_width) * width
        start_y = ops.random.uniform((batch_size,), 0.0, 1.0, seed=seed) * (1.0 - crop_height) * height
        zeros = ops.numpy.zeros_like(area)
        # Pixel centres: output x maps to start_x + (x + 0.5) * crop_width - 0.5.
        transforms = ops.numpy.stack(
            [
                crop_width,
                zeros,
                start_x + 0.5 * crop_width - 0.5,
                zeros,
                crop_height,
                start_y + 0.5 * crop_height - 0.5,
                zeros,
                zeros,
            ],
            axis=1,
        )
        return transforms, "bilinear", "nearest"

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, ratio=self.ratio)
        return config
