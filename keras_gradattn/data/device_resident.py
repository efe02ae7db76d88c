"""In-memory datasets held on the device, augmented inside the compiled step.

The host pipeline (pipeline.py) gathers, converts and augments every batch
in the host process and copies it to the device. On a GPU that caps
training at a few thousand images a second, far below what the model's
arithmetic allows. Here the images of every split live on the device, in one
non-trainable variable of a training wrapper, `DeviceDataModel`; `fit` feeds
it batches of row indices (512 bytes for a batch of 128) and labels, and the
wrapper gathers the rows, scales, resizes, augments (the same Keras layers
as the host pipeline) and normalises them inside the compiled train step,
then calls the classifier.

The index batches follow the host pipeline's order (same shuffle, same seed,
same shards), so both paths train on the same examples in the same batches;
only where the preprocessing runs differs.

What is trained is the wrapper; what is kept is the classifier. The wrapper
hands the classifier to whoever saves or inspects the model
(`wrapped_classifier`, read by `trained_classifier`), and leaves its images
out of its weights: a checkpoint (`BackupAndRestore`) holds the classifier,
the optimizer and the augmentation's random state, never the dataset.

```python
splits = data.load_dataset("digits")
classifier = create_model("resnet18", num_classes=10, input_shape=(32, 32, 3))
model = data.DeviceDataModel.for_splits(classifier, splits, seed=42)
model.compile(optimizer="adam")
train = data.make_index_pipeline(splits.train, 128, training=True, offset=model.offsets["train"])
model.fit(train, epochs=2)
classifier.save("digits.keras")  # the classifier alone, as with the host pipeline
```
"""

import keras
import numpy as np
from keras import ops

from keras_gradattn.data.augmentation import Augmenter
from keras_gradattn.data.errors import DatasetError
from keras_gradattn.data.pipeline import PIPELINE_CHOICES
from keras_gradattn.data.pipeline import check_shard
from keras_gradattn.data.pipeline import ShuffledBatches
from keras_gradattn.data.pipeline import shard_rows
from keras_gradattn.models.classifiers import PaperTraining
from keras_gradattn.utils import register_serializable
from keras_gradattn.utils import trained_classifier  # noqa: F401 (data.trained_classifier)
from keras_gradattn.utils.dependencies import module_available

# float16 holds the uint8 values 0..255 exactly at half float32's memory, and
# every backend gathers it on a GPU (TensorFlow has no GPU gather for uint8).
STORAGE_DTYPE = "float16"
SPLIT_NAMES = ("train", "validation", "test")
# `--data-placement auto` keeps datasets larger than this on the host.
DEVICE_DATA_LIMIT_BYTES = 2 * 1024**3


def split_offsets(splits):
    """Where each split starts in a bank holding the train, validation and
    test images in that order."""
    lengths = [len(getattr(splits, name)) for name in SPLIT_NAMES]
    return {name: int(start) for name, start in zip(SPLIT_NAMES, np.cumsum([0] + lengths[:-1]))}


def device_bytes(splits):
    """Bytes the splits' images take on the device (`STORAGE_DTYPE`)."""
    itemsize = np.dtype(STORAGE_DTYPE).itemsize
    return sum(getattr(splits, name).images.size * itemsize for name in SPLIT_NAMES)


@register_serializable
class DeviceDataModel(PaperTraining, keras.Model):
    """Trains `classifier` on images it holds, fed by batches of row indices.

    `call(indices, training)` gathers rows of the image bank (uint8 values
    stored as float16), divides by 255, resizes (bilinear) to the
    classifier's input and repeats gray to RGB where needed, applies the
    dataset's augmentation when training (then clips to [0, 1]), normalises
    with `mean` and `std`, and returns the classifier's logits: the host
    pipeline's steps, in its order, on the device.

    The bank is data, not a weight: `save_weights` and `.keras` files leave
    it out (a loaded wrapper has zeros until `set_images`). Save the
    classifier (`wrapped_classifier`) to keep a trained model.

    Args:
        classifier: the model to train; it takes normalised float images of
            `input_shape`.
        num_images: rows of the image bank (every split's images).
        stored_shape: `(height, width, channels)` of a stored image.
        input_shape: the classifier's `(height, width, channels)`.
        mean: per-channel means of [0, 1] images (one per input channel).
        std: per-channel standard deviations.
        augmentation: an augmentation recipe (`data.registry`), applied when
            training.
        seed: seeds the augmentation layers (as the host pipeline's).
    """

    def __init__(self, classifier, num_images, stored_shape, input_shape, mean, std,
                 augmentation="none", seed=None, **kwargs):  # fmt: skip
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        stored_shape, input_shape = tuple(stored_shape), tuple(input_shape)
        if len(stored_shape) != 3 or len(input_shape) != 3:
            raise ValueError(
                f"stored_shape and input_shape must be (height, width, channels); got {stored_shape} and "
                f"{input_shape}."
            )
        if stored_shape[-1] not in (1, input_shape[-1]):
            raise ValueError(
                f"stored images have {stored_shape[-1]} channels; the input needs {input_shape[-1]} (or 1, "
                "repeated)."
            )
        if len(mean) != input_shape[-1] or len(std) != input_shape[-1]:
            raise ValueError(f"mean {mean} and std {std} need one value per input channel ({input_shape[-1]}).")
        self.classifier = classifier
        self.num_images = int(num_images)
        self.stored_shape = stored_shape
        self.image_shape = input_shape
        self.mean = [float(value) for value in mean]
        self.std = [float(value) for value in std]
        self.augmentation = augmentation
        self.seed = seed
        self.augmentation_layers = Augmenter(augmentation, seed).layers
        if keras.backend.backend() != "tensorflow":
            # Keras marks its affine image layers as not jit-compilable for
            # TensorFlow's XLA, which lacks their kernel; JAX and PyTorch
            # compile them, and without this Keras would run the whole train
            # step uncompiled.
            for layer in self.augmentation_layers:
                layer.supports_jit = True
        self.images = self.add_weight(
            shape=(self.num_images, *stored_shape), dtype=STORAGE_DTYPE, initializer="zeros",
            trainable=False, autocast=False, name="images",
        )  # fmt: skip
        # Offsets of the splits in the bank, set by `for_splits`.
        self.offsets = {}
        # Its inputs are row indices and its state exists: built already (as
        # `BackupAndRestore` requires before `fit`).
        self.build((None,))

    @classmethod
    def for_splits(cls, classifier, splits, seed=None, **kwargs):
        """A wrapper holding the train, validation and test images of
        `splits` (in that order; `offsets` says where each starts)."""
        for name in SPLIT_NAMES:
            if not getattr(splits, name).in_memory:
                raise DatasetError(
                    f"{splits.spec.name}'s {name} split is streamed from tensorflow-datasets; only in-memory "
                    "splits can be held on the device (use the host pipeline)."
                )
        spec = splits.spec
        images = [getattr(splits, name).images for name in SPLIT_NAMES]
        model = cls(
            classifier, sum(len(part) for part in images), images[0].shape[1:], spec.input_shape,
            spec.mean, spec.std, augmentation=spec.augmentation, seed=seed, **kwargs,
        )  # fmt: skip
        model.set_images(np.concatenate(images))
        model.offsets = split_offsets(splits)
        return model

    @property
    def wrapped_classifier(self):
        return self.classifier

    def set_images(self, images):
        """Copies uint8 `images` `(num_images, *stored_shape)` into the bank."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.shape != tuple(self.images.shape):
            raise ValueError(
                f"set_images needs uint8 images of shape {tuple(self.images.shape)}; got {images.dtype} "
                f"{images.shape}."
            )
        self.images.assign(images.astype(STORAGE_DTYPE))

    def build(self, input_shape=None):
        if not self.classifier.built:
            self.classifier.build((None, *self.image_shape))
        self.built = True

    def preprocess(self, indices, training=False):
        """Normalised images of the bank's rows `indices` (augmented when
        `training`): what the classifier sees."""
        indices = ops.cast(ops.reshape(indices, (-1,)), "int32")
        images = ops.cast(ops.take(self.images, indices, axis=0), "float32") / 255.0
        height, width, channels = self.image_shape
        if self.stored_shape[:2] != (height, width):
            images = ops.image.resize(
                images, (height, width), interpolation="bilinear", antialias=False, data_format="channels_last"
            )
        if self.stored_shape[-1] == 1 and channels == 3:
            images = ops.repeat(images, 3, axis=-1)
        if training and self.augmentation_layers:
            for layer in self.augmentation_layers:
                images = layer(images, training=True)
            images = ops.clip(images, 0.0, 1.0)
        mean = ops.convert_to_tensor(self.mean, "float32")
        std = ops.convert_to_tensor(self.std, "float32")
        return (images - mean) / std

    def call(self, indices, training=None):
        return self.classifier(self.preprocess(indices, training=bool(training)), training=training)

    def compute_output_shape(self, input_shape):
        return self.classifier.compute_output_shape((input_shape[0], *self.image_shape))

    # The bank is data: checkpoints and `.keras` files leave it out.
    def save_own_variables(self, store):
        pass

    def load_own_variables(self, store):
        pass

    def get_config(self):
        config = super().get_config()
        config.update(
            classifier=keras.saving.serialize_keras_object(self.classifier),
            num_images=self.num_images,
            stored_shape=self.stored_shape,
            input_shape=self.image_shape,
            mean=self.mean,
            std=self.std,
            augmentation=self.augmentation,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


def make_index_pipeline(split, batch_size, training=False, seed=42, pipeline="auto", drop_remainder=False,
                        shard=(0, 1), offset=0, rows=None):  # fmt: skip
    """Batches of `(row indices int32 (B,), labels int32 (B,))` for a
    `DeviceDataModel`: the host pipeline's batches (`make_pipeline` with the
    same arguments), as rows of the bank (`offset` + the row in `split`).

    Args:
        split: an in-memory `DatasetSplit`.
        batch_size, training, seed, drop_remainder, shard: as `make_pipeline`'s
            (training shuffles, reshuffled every epoch; no augmentation here:
            the model augments).
        pipeline: `"tf.data"`, `"pydataset"` or `"auto"` (tf.data when
            TensorFlow imports).
        offset: where `split` starts in the bank (`DeviceDataModel.offsets`).
        rows: the bank row of each example of `split`, where they are not
            `offset`, `offset + 1`, ... (a share of a split held whole).
    """
    if not split.in_memory:
        raise DatasetError(f"Split {split.name!r} is streamed; index batches need an in-memory split.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    check_shard(shard, batch_size)
    if pipeline not in PIPELINE_CHOICES:
        raise ValueError(f"Unknown pipeline {pipeline!r}; expected one of {PIPELINE_CHOICES}.")
    if pipeline == "auto":
        pipeline = "tf.data" if module_available("tensorflow") else "pydataset"
    bank_rows = offset + np.arange(len(split)) if rows is None else np.asarray(rows)
    if bank_rows.shape != (len(split),):
        raise ValueError(f"rows must give one bank row per example ({len(split)}); got shape {bank_rows.shape}.")
    bank_rows = bank_rows.astype(np.int32)
    if pipeline == "pydataset":
        return IndexPyDataset(split.labels, bank_rows, batch_size, training, seed, drop_remainder, shard)
    import tensorflow as tf

    labels = tf.constant(split.labels)
    bank_rows = tf.constant(bank_rows)
    share = shard_rows(shard, batch_size)
    dataset = tf.data.Dataset.range(len(split))
    if training:
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if shard[1] > 1:
        dataset = dataset.map(lambda index: index[share])
    dataset = dataset.map(lambda index: (tf.gather(bank_rows, index), tf.gather(labels, index)))
    return dataset.prefetch(tf.data.AUTOTUNE)


class IndexPyDataset(ShuffledBatches):
    """`make_index_pipeline` without TensorFlow: the host `ArrayPyDataset`'s
    order and batches (`ShuffledBatches`), as bank rows and labels."""

    def __init__(self, labels, bank_rows, batch_size, training=False, seed=42, drop_remainder=False, shard=(0, 1),
                 **kwargs):  # fmt: skip
        super().__init__(len(labels), batch_size, training, seed, drop_remainder, shard, **kwargs)
        self.labels = np.asarray(labels, np.int32)
        self.bank_rows = np.asarray(bank_rows, np.int32)

    def __getitem__(self, index):
        batch = self.batch_positions(index)
        return self.bank_rows[batch], self.labels[batch]
