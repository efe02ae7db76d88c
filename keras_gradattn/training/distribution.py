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
- JAX, several processes (`JaxProcesses`, jax_processes.py): the same
  `DataParallel` over every process's devices; each process feeds its
  share of every global batch.
- PyTorch: several processes only (one per device), on `torch.distributed`
  (`TorchProcesses`, torch_processes.py): Keras' torch backend has no data
  parallelism within one process.

Several processes (`ProcessGroupSpec`, processes.py): every process trains on
its share of each global batch; process 0 alone writes the run directory.

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
    "--distribute on the torch backend needs several processes, one per device (Keras' torch backend "
    "has no data parallelism within one process): start one per GPU with torchrun, or pass "
    "--num-processes N --process-id I --coordinator HOST:PORT to each."
)


class SingleDevice:
    """No distribution: the default device of the backend.

    Also the interface every distribution offers the trainer. A multi-process
    one overrides the process attributes and the collectives; with one
    process they are the identity.
    """

    name = "single_device"
    num_replicas = 1
    # The batch size must be a multiple of this; evaluation batches are padded
    # to a multiple of it.
    batch_multiple = 1
    drop_training_remainder = False
    num_processes = 1
    process_id = 0
    # True where `predict` on the whole test split already returns every row
    # on every process (TensorFlow's multi-worker strategy shares each batch
    # out and Keras gathers); False: each process predicts its share.
    gathers_predictions = False
    # True where every process computes each whole global step together (JAX
    # across processes): random state must then be the same everywhere.
    shares_one_step = False
    # True where several replicas compute their shares from one mirrored
    # random state (TensorFlow's strategies): in-step augmentation would
    # repeat the same draws on every replica's share.
    mirrors_random_state = False

    @property
    def is_chief(self):
        """Process 0: the one that writes the run directory."""
        return self.process_id == 0

    def scope(self):
        return contextlib.nullcontext()

    def prepare_model(self, model):
        return model

    def save_model(self, model, filepath):
        save_model(model, filepath)

    def distribute_training_data(self, dataset):
        """What `fit` gets for this process's training batches."""
        return dataset

    def close(self):
        pass

    def describe(self):
        return {"strategy": self.name, "num_replicas": self.num_replicas}

    # --- across processes ---------------------------------------------------

    def broadcast_object(self, value):
        """Process 0's `value` (picklable), on every process."""
        return value

    def all_gather_object(self, value):
        """Every process's `value`, in process order."""
        return [value]

    def epoch_callbacks(self):
        """Callbacks that must run first in `fit`, e.g. to agree on the
        epoch's logs before any decision is taken on them."""
        return []

    def lost_process_reason(self, error):
        """What `error` says of another process of the run that is gone, in a
        few words; None when it is some other error."""
        return None


class JaxDataParallel(SingleDevice):
    name = "jax_data_parallel"
    drop_training_remainder = True
    shares_one_step = True

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


class JaxProcesses(JaxDataParallel):
    """One process of a JAX data-parallel group (see
    keras_gradattn/training/jax_processes.py): `DataParallel` over every
    process's devices, each process feeding its share of each global batch.
    The global batch's loss, gradients and BatchNorm statistics are computed
    as one array, so the training is the single process's; metrics come back
    identical on every process.

    Each process evaluates the whole validation split (the global evaluation
    batch holds every example once per process: the means are unchanged) and
    predicts its share of the test split.
    """

    name = "jax_multi_process_data_parallel"

    def __init__(self, spec):
        from keras_gradattn.training import jax_processes

        self._jax = jax_processes
        self.spec = spec
        self.num_processes = spec.num_processes
        self.process_id = spec.process_id
        self.collective_backend = jax_processes.connect(spec)
        self._previous = keras.distribution.distribution()
        devices = keras.distribution.list_devices()
        self.num_replicas = self.batch_multiple = len(devices)
        # The pipelines shard the data already: Keras must not shard it again.
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
        )
        from keras_gradattn.backend import compute_devices

        self.devices = _devices_by_process(self.all_gather_object(compute_devices()))

    def prepare_model(self, model):
        return self._jax.predict_local_rows(model)

    def close(self):
        keras.distribution.set_distribution(self._previous)
        self._jax.shutdown()

    def describe(self):
        return _describe_process_group(self, self.collective_backend)

    def broadcast_object(self, value):
        return self._jax.broadcast_object(value)

    def all_gather_object(self, value):
        return self._jax.all_gather_object(value)

    def lost_process_reason(self, error):
        return self._jax.lost_process_reason(error)


class TensorFlowMirrored(SingleDevice):
    name = "tensorflow_mirrored_strategy"
    mirrors_random_state = True

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


def _devices_by_process(devices_per_process):
    """`["process 0: cpu:0", ...]` from every process's device list, in order."""
    return [f"process {index}: {', '.join(devices)}" for index, devices in enumerate(devices_per_process)]


def _describe_process_group(distribution, collectives, **extra):
    """config.json's record of a multi-process distribution."""
    return {
        "strategy": distribution.name, "num_replicas": distribution.num_replicas,
        "num_processes": distribution.num_processes, "collectives": collectives,
        "devices": distribution.devices, "launcher": distribution.spec.launcher, **extra,
    }  # fmt: skip


def _batch_norm_layers(model):
    return [
        layer for layer in keras_internals.flatten_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]  # fmt: skip


class TorchProcesses(SingleDevice):
    """One process of a `torch.distributed` data-parallel group (see
    keras_gradattn/training/torch_processes.py): gradients averaged over the
    processes before the optimizer, BatchNorm on global-batch statistics.

    Each process trains on its share of every global batch, evaluates the
    whole validation split (the weights, hence the results, are the same
    everywhere; process 0's are taken, so that every process makes the same
    learning-rate and stopping decisions) and its share of the test split.
    """

    name = "torch_distributed_data_parallel"
    drop_training_remainder = True

    def __init__(self, spec):
        from keras_gradattn.training import torch_processes

        self._torch = torch_processes
        self.spec = spec
        self.num_processes = self.num_replicas = spec.num_processes
        self.process_id = spec.process_id
        self.collective_backend = torch_processes.connect(spec)
        from keras_gradattn.backend import compute_devices

        self.devices = _devices_by_process(self.all_gather_object(compute_devices()))

    def prepare_model(self, model):
        return self._torch.make_data_parallel(model, _batch_norm_layers(model))

    def close(self):
        self._torch.close()

    def describe(self):
        return _describe_process_group(self, self.collective_backend)

    def broadcast_object(self, value):
        return self._torch.broadcast_object(value)

    def all_gather_object(self, value):
        return self._torch.all_gather_object(value)

    def epoch_callbacks(self):
        return [EpochLogsAgreement(self._torch.all_reduce_mean, self.broadcast_object)]

    def lost_process_reason(self, error):
        return self._torch.lost_process_reason(error)


class TensorFlowProcesses(TensorFlowMirrored):
    """One process of a `tf.distribute.MultiWorkerMirroredStrategy` group (see
    keras_gradattn/training/tensorflow_processes.py): each process trains on
    its share of every global batch, gradients summed over the processes,
    BatchNorm on global-batch statistics (`synchronized=True`).

    Validation, evaluation and prediction take the whole split on every
    process: the strategy shares every batch out and Keras gathers, so the
    logs and the test logits are the same everywhere, every example counted
    once (`gathers_predictions`).
    """

    name = "tensorflow_multi_worker_mirrored_strategy"
    drop_training_remainder = True
    gathers_predictions = True

    def __init__(self, spec):
        from keras_gradattn.training import tensorflow_processes

        self._tensorflow = tensorflow_processes
        self.spec = spec
        self.num_processes = spec.num_processes
        self.process_id = spec.process_id
        self.strategy = tensorflow_processes.connect(spec)
        self.num_replicas = self.strategy.num_replicas_in_sync
        self.devices = _devices_by_process(self.all_gather_object(list(self.strategy.extended.worker_devices)))

    def prepare_model(self, model):
        return keras_internals.fit_under_multi_worker_mirrored_strategy(super().prepare_model(model))

    def distribute_training_data(self, dataset):
        return self._tensorflow.distribute_training_data(self.strategy, dataset)

    def describe(self):
        return _describe_process_group(
            self, "ring/nccl (auto)", workers=self._tensorflow.worker_addresses(self.spec)
        )

    def broadcast_object(self, value):
        return self.all_gather_object(value if self.is_chief else None)[0]

    def all_gather_object(self, value):
        return self._tensorflow.all_gather_object(self.strategy, value, self.num_processes)

    def lost_process_reason(self, error):
        return self._tensorflow.lost_process_reason(error)


class EpochLogsAgreement(keras.callbacks.Callback):
    """Makes every process's epoch logs the run's: training metrics averaged
    over the processes (their shares of each batch are equal), everything
    else (validation metrics, the learning rate) process 0's.

    It edits the logs in place, before the callbacks after it read them.
    """

    def __init__(self, all_reduce_mean, broadcast_object):
        super().__init__()
        self._all_reduce_mean = all_reduce_mean
        self._broadcast_object = broadcast_object

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        training = sorted(key for key in logs if not key.startswith("val_") and key != "learning_rate")
        averages = self._all_reduce_mean([float(logs[key]) for key in training]) if training else []
        chief = self._broadcast_object({key: value for key, value in logs.items() if key not in training})
        logs.update(chief)
        logs.update({key: float(value) for key, value in zip(training, averages)})


def setup_distribution(backend, enabled, processes=None):
    """The distribution for `backend` (`SingleDevice` unless `enabled`).

    `processes`: the run's `ProcessGroupSpec`; with more than one process,
    this process joins the group (a `TrainingSetupError` when it cannot).
    Must be called before the model is created.
    """
    if not enabled:
        return SingleDevice()
    if processes is not None and processes.multi_process:
        if backend == "torch":
            return TorchProcesses(processes)
        if backend == "tensorflow":
            return TensorFlowProcesses(processes)
        if backend == "jax":
            return JaxProcesses(processes)
        raise TrainingSetupError(
            f"--num-processes {processes.num_processes} is not available on the {backend} backend; "
            "allowed: the jax, tensorflow and torch backends."
        )
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
