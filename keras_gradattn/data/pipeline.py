"""Input pipelines: uint8 splits -> normalised float batches for the model.

Per batch, in this order and exactly once each:
1. uint8 -> float32 in [0, 1] (divide by 255);
2. resize to `spec.input_shape` (bilinear) and repeat gray to 3 channels
   where the model wants RGB;
3. training only: the dataset's augmentation on [0, 1] images, then a clip
   to [0, 1];
4. normalise with the dataset's per-channel mean and std.
Normalising once, at the end, is the fix for the reference's defect 1 (its
training images were normalised, wrapped back to uint8 and normalised again).

Two implementations share steps and layers: `tf.data` (`make_pipeline`,
TensorFlow imported lazily) and a `keras.utils.PyDataset` over NumPy arrays
(`make_pydataset`) for machines without TensorFlow, which runs the same Keras
augmentation layers on the active backend.
"""

import math
import time

import numpy as np

import keras

from keras_gradattn.data.augmentation import build_augmentation
from keras_gradattn.data.errors import DatasetError
from keras_gradattn.utils.dependencies import module_available

PIPELINE_CHOICES = ("auto", "tf.data", "pydataset")
# Streamed splits smaller than this are cached in memory after decoding.
STREAM_CACHE_LIMIT_BYTES = 2 * 1024**3


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")


def _check_split(split, spec):
    if split.num_classes != spec.num_classes:
        raise DatasetError(
            f"Split {split.name!r} has {split.num_classes} classes but the spec "
            f"{spec.name!r} has {spec.num_classes}."
        )
    if split.in_memory:
        stored = split.images.shape[1:]
        if stored[-1] not in (1, spec.channels):
            raise DatasetError(
                f"Split {split.name!r} images have {stored[-1]} channels; the "
                f"spec {spec.name!r} needs {spec.channels} (or 1, repeated)."
            )
    if len(split) == 0:
        raise DatasetError(f"Split {split.name!r} is empty.")



def normalize(images, spec):
    """`(images - mean) / std` per channel, NumPy, for [0, 1] images."""
    return (np.asarray(images, np.float32) - np.float32(spec.mean)) / np.float32(spec.std)


def denormalize(images, spec):
    """Inverse of `normalize`: back to the [0, 1] scale (NumPy)."""
    return np.asarray(images, np.float32) * np.float32(spec.std) + np.float32(spec.mean)


def make_pipeline(
    split,
    spec,
    batch_size=128,
    training=False,
    seed=42,
    pipeline="auto",
    augment=True,
    drop_remainder=False,
    cache=None,
    shard=(0, 1),
):
    """Batches of `(images float32 (B, H, W, C), labels int32 (B,))`.

    Args:
        split: a `DatasetSplit` from `load_dataset`.
        spec: the dataset's `DatasetSpec` (`splits.spec`).
        batch_size: examples per batch, `> 0`.
        training: shuffle (reshuffled every epoch, seeded) and augment. Off:
            resize and normalise only, in the split's order.
        seed: seeds the shuffle and the augmentation layers; the same seed
            gives the same batches.
        pipeline: `"tf.data"`, `"pydataset"` or `"auto"` (tf.data when
            TensorFlow imports, else PyDataset).
        augment: apply the dataset's augmentation when `training`.
        drop_remainder: drop the last incomplete batch.
        cache: streamed splits only: `None` caches the decoded split in
            memory when it is under 2 GB, a string caches to that file,
            `False` never caches. In-memory splits are already held as one
            array; they are gathered batch by batch and never copied.
        shard: `(index, count)`: this process's share of every batch, for
            training on `count` processes. The batches are drawn as for one
            process (same seed, same order) and each process keeps rows
            `[index * b, (index + 1) * b)` of each, `b = batch_size / count`
            (`batch_size` must be a multiple of `count`), before augmenting
            them; augmentation is seeded per share.

    Returns:
        A `tf.data.Dataset`, or a `keras.utils.PyDataset` for
        `pipeline="pydataset"` (or `"auto"` without TensorFlow).
    """
    _check_batch_size(batch_size)
    _check_split(split, spec)
    check_shard(shard, batch_size)
    if pipeline not in PIPELINE_CHOICES:
        raise ValueError(f"Unknown pipeline {pipeline!r}; expected one of {PIPELINE_CHOICES}.")
    if pipeline == "auto":
        pipeline = "tf.data" if module_available("tensorflow") else "pydataset"
    if pipeline == "pydataset":
        return make_pydataset(
            split, spec, batch_size, training=training, seed=seed, augment=augment,
            drop_remainder=drop_remainder, shard=shard,
        )  # fmt: skip
    return _make_tf_data(split, spec, batch_size, training, seed, augment, drop_remainder, cache, shard)


def check_shard(shard, batch_size):
    """Raises `ValueError` unless `shard` is `(index, count)` with `count`
    dividing `batch_size`."""
    index, count = shard
    if not (isinstance(count, (int, np.integer)) and count >= 1 and 0 <= index < count):
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard!r}.")
    if batch_size % count:
        raise ValueError(f"batch_size {batch_size} must be a multiple of the shard count {count}.")


def shard_rows(shard, batch_size):
    """The `slice` of each batch that shard `(index, count)` keeps."""
    index, count = shard
    share = batch_size // count
    return slice(index * share, (index + 1) * share)


def epoch_permutation(length, seed, epoch):
    """The PyDataset pipelines' order of `length` examples in `epoch`."""
    return np.random.default_rng([seed, epoch]).permutation(length)


def augmentation_seed(seed, shard):
    """Shard 0 (and a single process) keeps `seed`; the others draw their own,
    so that the processes do not apply the same crops to their rows."""
    index, _ = shard
    if index == 0:
        return seed
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] % 2**31)


def _make_tf_data(split, spec, batch_size, training, seed, augment, drop_remainder, cache, shard=(0, 1)):
    import tensorflow as tf

    augmenter = build_augmentation(spec, augmentation_seed(seed, shard)) if training and augment else None
    rows = shard_rows(shard, batch_size)
    height, width, channels = spec.input_shape
    mean = tf.constant(spec.mean, tf.float32)
    std = tf.constant(spec.std, tf.float32)

    def prepare(images, labels):
        images = tf.cast(images, tf.float32) / 255.0
        if tuple(images.shape[1:3]) != (height, width):
            images = tf.image.resize(images, (height, width), method="bilinear")
        if images.shape[-1] == 1 and channels == 3:
            images = tf.repeat(images, 3, axis=-1)
        if augmenter:
            images = augmenter(images)
            images = tf.clip_by_value(images, 0.0, 1.0)
        images = (images - mean) / std
        images = tf.ensure_shape(images, (None, height, width, channels))
        return images, tf.cast(labels, tf.int32)

    if split.in_memory:
        images_tensor = tf.convert_to_tensor(split.images)
        labels_tensor = tf.convert_to_tensor(split.labels)
        dataset = tf.data.Dataset.range(len(split))
        if training:
            # Shuffles indices, not images: the buffer costs 8 bytes an example.
            dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        if shard[1] > 1:
            dataset = dataset.map(lambda index: index[rows])
        dataset = dataset.map(
            lambda index: (tf.gather(images_tensor, index), tf.gather(labels_tensor, index)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    else:
        dataset = split.stream()
        if cache is None:
            image_bytes = int(np.prod(spec.stored_shape))
            cache = "" if len(split) * image_bytes < STREAM_CACHE_LIMIT_BYTES else False
        if cache is not False:
            dataset = dataset.cache(cache)
        if training:
            dataset = dataset.shuffle(min(len(split), 10_000), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        if shard[1] > 1:
            dataset = dataset.map(lambda images, labels: (images[rows], labels[rows]))
    # The augmentation layers advance one random state per call: run them in
    # order (no parallel calls) so the same seed gives the same batches.
    # Within a batch the ops are vectorised and use every core.
    if augmenter:
        dataset = dataset.map(prepare)
    else:
        dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


class ShuffledBatches(keras.utils.PyDataset):
    """The order and batching of the PyDataset pipelines: positions of
    `length` examples, in order or (`training`) a permutation drawn from
    `(seed, epoch)` and renewed by `on_epoch_end`, cut into batches and each
    batch into this process's `shard`. Subclasses turn a batch's positions
    (`batch_positions`) into their batch."""

    def __init__(self, length, batch_size, training=False, seed=42, drop_remainder=False, shard=(0, 1), **kwargs):
        super().__init__(**kwargs)
        self.length = int(length)
        self.batch_size = int(batch_size)
        self.training = training
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.rows = shard_rows(shard, batch_size)
        self.epoch = 0
        self._order = self._epoch_order()

    def _epoch_order(self):
        if not self.training:
            return np.arange(self.length)
        return epoch_permutation(self.length, self.seed, self.epoch)

    def __len__(self):
        if self.drop_remainder:
            return self.length // self.batch_size
        return math.ceil(self.length / self.batch_size)

    def batch_positions(self, index):
        """Positions of the examples of batch `index` (this process's share)."""
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} out of range for {len(self)} batches.")
        return self._order[index * self.batch_size : (index + 1) * self.batch_size][self.rows]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._epoch_order()


class ArrayPyDataset(ShuffledBatches):
    """A `keras.utils.PyDataset` over an in-memory split; no TensorFlow.

    Same steps and augmentation layers as the tf.data pipeline, run with
    `keras.ops` on the active backend; batches come back as NumPy arrays.
    The order is a permutation drawn from `(seed, epoch)`, renewed by
    `on_epoch_end`, so epochs differ and runs repeat.
    """

    def __init__(self, split, spec, batch_size, training=False, seed=42, augment=True,
                 drop_remainder=False, shard=(0, 1), **kwargs):  # fmt: skip
        _check_batch_size(batch_size)
        _check_split(split, spec)
        check_shard(shard, batch_size)
        if not split.in_memory:
            raise DatasetError(
                f"Split {split.name!r} of {spec.name} is streamed from "
                "tensorflow-datasets; the PyDataset pipeline needs in-memory "
                "arrays. Use pipeline='tf.data' (needs TensorFlow)."
            )
        super().__init__(len(split), batch_size, training, seed, drop_remainder, shard, **kwargs)
        self.split = split
        self.spec = spec
        self.augmenter = build_augmentation(spec, augmentation_seed(seed, shard)) if training and augment else None

    def __getitem__(self, index):
        batch = self.batch_positions(index)
        images = self.split.images[batch].astype(np.float32) / np.float32(255.0)
        height, width, channels = self.spec.input_shape
        if images.shape[1:3] != (height, width) or self.augmenter:
            images = keras.ops.convert_to_tensor(images)
            if tuple(images.shape[1:3]) != (height, width):
                images = keras.ops.image.resize(
                    images, (height, width), interpolation="bilinear", antialias=False,
                    data_format="channels_last",
                )  # fmt: skip
            if self.augmenter:
                if images.shape[-1] == 1 and channels == 3:
                    images = keras.ops.repeat(images, 3, axis=-1)
                images = self.augmenter(images)
            images = keras.ops.convert_to_numpy(images)
        if images.shape[-1] == 1 and channels == 3:
            images = np.repeat(images, 3, axis=-1)
        images = np.clip(images, 0.0, 1.0) if self.augmenter else images
        return normalize(images, self.spec), self.split.labels[batch].astype(np.int32)


def make_pydataset(split, spec, batch_size=128, training=False, seed=42, augment=True,
                   drop_remainder=False, shard=(0, 1), **kwargs):  # fmt: skip
    """The TensorFlow-free pipeline: an `ArrayPyDataset` (see `make_pipeline`).

    `**kwargs` go to `keras.utils.PyDataset` (`workers`, `use_multiprocessing`,
    `max_queue_size`).
    """
    return ArrayPyDataset(split, spec, batch_size, training=training, seed=seed,
                          augment=augment, drop_remainder=drop_remainder, shard=shard,
                          **kwargs)  # fmt: skip


def _iterate_batches(dataset):
    if isinstance(dataset, keras.utils.PyDataset):
        while True:
            for index in range(len(dataset)):
                yield dataset[index]
            dataset.on_epoch_end()
    else:
        while True:
            yielded = False
            for batch in dataset:
                yielded = True
                yield batch
            if not yielded:
                return


def measure_pipeline_throughput(dataset, num_batches=50, warmup_batches=2):
    """Images per second a pipeline delivers, over `num_batches` batches.

    The first `warmup_batches` (tracing, buffer fill) are not timed. Epochs
    are repeated when the dataset is shorter than the measurement.
    """
    if num_batches <= 0 or warmup_batches < 0:
        raise ValueError(
            f"num_batches must be > 0 and warmup_batches >= 0, got {num_batches} "
            f"and {warmup_batches}."
        )
    batches = _iterate_batches(dataset)
    for _ in range(warmup_batches):
        next(batches)
    images = 0
    start = time.perf_counter()
    for _ in range(num_batches):
        batch_images = next(batches)[0]
        images += int(batch_images.shape[0])
    elapsed = time.perf_counter() - start
    return images / elapsed
