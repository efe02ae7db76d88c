"""Data-parallel training with the engines the backends ship, one function each.

- JAX: `keras.distribution.DataParallel` over every local device. Batches are
  global arrays sharded along the batch axis, so BatchNorm statistics and the
  loss are those of the whole global batch: the same computation as one
  device. JAX needs every batch to split evenly over the devices, hence:
  the batch size must be a multiple of the device count; the last, partial
  training batch of an epoch is dropped (the shuffle changes every epoch);
  evaluation batches are padded with zero-weight examples, and predictions
  for the padding are discarded.
- TensorFlow: `tf.distribute.MirroredStrategy` over the GPUs, or all logical
  CPUs when there is no GPU; model creation and `compile` run inside
  `strategy.scope()`. Keras splits each global batch over the replicas.
  BatchNorm layers are switched to `synchronized=True` while training, so
  that their statistics are the global batch's, as on one device; saved
  `.keras` files keep `synchronized=False` so they load on every backend.
- PyTorch: refused. Keras' torch backend has no built-in data parallelism.

`setup_distribution(backend, enabled)` returns an object the trainer uses the
same way for every backend (`SingleDevice` when distribution is off).
Multi-host use is described in docs/training.md.
"""

import contextlib

import keras
import numpy as np

from keras_gradattn.callbacks.best_model_checkpoint import save_model
from keras_gradattn.training.errors import TrainingSetupError
from keras_gradattn.utils import keras_internals

TORCH_REFUSAL = (
    "--distribute is not available on the torch backend: Keras' torch backend has no "
    "built-in data parallelism; use --backend jax (keras.distribution.DataParallel) or "
    "--backend tensorflow (tf.distribute.MirroredStrategy), or wrap the model in "
    "torch.nn.parallel.DistributedDataParallel in your own training loop."
)


class SingleDevice:
    """No distribution: the default device of the backend."""

    name = "single_device"
    num_replicas = 1
    # The batch size must be a multiple of this; evaluation batches are padded
    # to a multiple of it.
    batch_multiple = 1
    drop_training_remainder = False

    def scope(self):
        return contextlib.nullcontext()

    def prepare_model(self, model):
        return model

    def save_model(self, model, filepath):
        save_model(model, filepath)

    def close(self):
        pass

    def describe(self):
        return {"strategy": self.name, "num_replicas": self.num_replicas}


class JaxDataParallel(SingleDevice):
    name = "jax_data_parallel"
    drop_training_remainder = True

    def __init__(self):
        devices = keras.distribution.list_devices()
        self.devices = [str(device) for device in devices]
        self.num_replicas = self.batch_multiple = len(devices)
        self._previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))

    def close(self):
        keras.distribution.set_distribution(self._previous)

    def describe(self):
        return {"strategy": self.name, "num_replicas": self.num_replicas, "devices": self.devices}


class TensorFlowMirrored(SingleDevice):
    name = "tensorflow_mirrored_strategy"

    def __init__(self):
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        self.devices = [device.name for device in devices]
        self.strategy = tf.distribute.MirroredStrategy(devices=self.devices)
        self.num_replicas = self.strategy.num_replicas_in_sync

    def scope(self):
        return self.strategy.scope()

    def prepare_model(self, model):
        for layer in _batch_norm_layers(model):
            layer.synchronized = True
        return model

    def save_model(self, model, filepath):
        layers = _batch_norm_layers(model)
        for layer in layers:
            layer.synchronized = False
        try:
            save_model(model, filepath)
        finally:
            for layer in layers:
                layer.synchronized = True

    def describe(self):
        return {"strategy": self.name, "num_replicas": self.num_replicas, "devices": self.devices}


def _batch_norm_layers(model):
    return [
        layer for layer in keras_internals.flatten_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]  # fmt: skip


def setup_distribution(backend, enabled):
    """The distribution for `backend` (`SingleDevice` unless `enabled`).

    Must be called before the model is created. Raises `TrainingSetupError`
    for the torch backend.
    """
    if not enabled:
        return SingleDevice()
    if backend == "jax":
        return JaxDataParallel()
    if backend == "tensorflow":
        return TensorFlowMirrored()
    if backend == "torch":
        raise TrainingSetupError(TORCH_REFUSAL)
    raise TrainingSetupError(f"--distribute is not supported on the {backend} backend.")


def pad_evaluation_batches(dataset, multiple):
    """Pads each batch to a multiple of `multiple` examples, with weight 0.

    Yields `(images, labels, sample_weights)`: weights 1 for real examples, 0
    for the padding (copies of zeros), so accuracy and the other compiled
    metrics ignore it. Only evaluation uses this (BatchNorm runs on its moving
    statistics there); predictions for the padding rows are dropped by the
    caller, which knows the real count. `multiple=1` returns `dataset`.
    """
    if multiple == 1:
        return dataset
    if isinstance(dataset, keras.utils.PyDataset):
        return _PaddedPyDataset(dataset, multiple)
    import tensorflow as tf

    def pad(images, labels):
        count = tf.shape(images)[0]
        extra = (-count) % multiple
        rank = len(images.shape)
        images = tf.pad(images, [[0, extra]] + [[0, 0]] * (rank - 1))
        labels = tf.pad(labels, [[0, extra]])
        weights = tf.concat([tf.ones([count]), tf.zeros([extra])], axis=0)
        return images, labels, weights

    return dataset.map(pad)


class _PaddedPyDataset(keras.utils.PyDataset):
    def __init__(self, dataset, multiple):
        super().__init__()
        self.dataset = dataset
        self.multiple = multiple

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        images, labels = self.dataset[index]
        extra = (-len(images)) % self.multiple
        weights = np.concatenate([np.ones(len(images), np.float32), np.zeros(extra, np.float32)])
        images = np.concatenate([images, np.zeros((extra,) + images.shape[1:], images.dtype)])
        labels = np.concatenate([labels, np.zeros(extra, labels.dtype)])
        return images, labels, weights

    def on_epoch_end(self):
        self.dataset.on_epoch_end()
