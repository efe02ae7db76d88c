"""Data parallelism over processes for Keras' TensorFlow backend, on
`tf.distribute.MultiWorkerMirroredStrategy` (see docs/training.md, "Several processes and machines").

- The workers: TF_CONFIG's (or KERAS_DISTRIBUTION_JOB_ADDRESSES') list when
  the launcher gave one; from `--coordinator HOST:PORT` alone, process `i`
  listens on `HOST:PORT+i`, so every process must run on the coordinator's
  machine (several machines need TF_CONFIG).
- Collectives: RING (gRPC) on CPUs, NCCL where there are GPUs (AUTO).
- Keras splits nothing: each process feeds its own share of every global
  batch (`distribute_training_data`), the gradients are summed over the
  processes after Keras has divided each process's loss by their number;
  BatchNorm is `synchronized=True`, i.e. global-batch statistics.
- Evaluation and prediction: every process passes the whole split; the
  strategy gives each process part of every batch and Keras gathers
  (metrics are summed over processes; `predict` returns every row, in order,
  on every process).
- Every wait is bounded: joining by TensorFlow's coordination service
  (`cluster_register_timeout`) and, for process 0 which waits for the others
  without one, a watchdog that ends the process (TensorFlow ignores SIGTERM
  once its coordination agent runs); a process that dies is noticed by the
  others' heartbeats and their next collective fails.
"""

import os
import pickle
import re
import sys
import threading

import numpy as np

from keras_gradattn.training.errors import TrainingSetupError

# A silent process is declared lost after this long (the heartbeat), at most
# the group's timeout.
HEARTBEAT_TIMEOUT_SECONDS = 10


def worker_addresses(spec):
    """Every process's `HOST:PORT`, in process order."""
    if len(spec.worker_addresses) == spec.num_processes:
        return list(spec.worker_addresses)
    host = spec.coordinator.rpartition(":")[0]  # IPv6 hosts keep their brackets
    return [f"{host}:{spec.coordinator_port + index}" for index in range(spec.num_processes)]


def connect(spec, prog="gradattn-train"):
    """This process's `MultiWorkerMirroredStrategy`; `TrainingSetupError` when
    the group does not assemble within `spec.timeout_seconds`.

    Must run before TensorFlow computes anything in this process.
    """
    import tensorflow as tf
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    addresses = worker_addresses(spec)
    timeout_ms = int(spec.timeout_seconds * 1000)
    # Configured before the strategy, which then keeps it: the defaults wait
    # for a missing process forever.
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader="/job:worker/replica:0/task:0",
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name="worker", num_tasks=spec.num_processes)],
        cluster_register_timeout_in_ms=timeout_ms,
        heartbeat_timeout_in_ms=min(timeout_ms, HEARTBEAT_TIMEOUT_SECONDS * 1000),
        shutdown_barrier_timeout_in_ms=timeout_ms,
    )
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": addresses}), task_type="worker", task_id=spec.process_id, rpc_layer="grpc"
    )
    # The TF_CONFIG a launcher set must not override the resolver.
    os.environ.pop("TF_CONFIG", None)
    role = "wait for the other processes at" if spec.is_chief else "reach the coordinator"
    message = (
        f"process {spec.process_id} of {spec.num_processes} could not {role} {addresses[0]} within "
        f"{spec.timeout_seconds:g} s"
    )
    watchdog = threading.Timer(spec.timeout_seconds + 30, _give_up, args=(prog, message))
    watchdog.daemon = True
    watchdog.start()
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    except (tf.errors.OpError, RuntimeError, ValueError) as error:
        raise TrainingSetupError(
            f"{message} ({_first_line(error)}); start every process with the same --coordinator, or raise "
            "--process-timeout."
        ) from None
    finally:
        watchdog.cancel()
    return strategy


def _give_up(prog, message):
    # The strategy's constructor cannot be interrupted: end the process, as
    # the CLI would have (one line, exit status 2).
    print(f"{prog}: error: {message}; start every process with the same --coordinator, or raise "
          "--process-timeout.", file=sys.stderr, flush=True)  # fmt: skip
    os._exit(2)


def _first_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if any(word in line for word in ("aborted by", "unhealthy", "Connection", "Deadline", "connect")):
            return line[:200]
    return (lines[0] if lines else type(error).__name__)[:200]


def lost_process_reason(error):
    """The line of `error` that says another process is gone, or None."""
    import tensorflow as tf

    lost = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
            tf.errors.CancelledError)  # fmt: skip
    if not isinstance(error, lost):
        return None
    line = _first_line(error)
    return re.sub(r"\s+", " ", line)[:160]


def distribute_training_data(strategy, dataset):
    """This process's own batches, fed as they are: a `tf.data.Dataset` is
    not split again (`experimental_distribute_dataset` would)."""
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        dataset = _py_dataset_as_tf_data(dataset)
    return strategy.distribute_datasets_from_function(lambda context: dataset)


def _py_dataset_as_tf_data(dataset):
    import tensorflow as tf

    images, labels = dataset[0]
    signature = (
        tf.TensorSpec((None, *images.shape[1:]), tf.as_dtype(images.dtype)),
        tf.TensorSpec((None,), tf.as_dtype(labels.dtype)),
    )

    def batches():
        for index in range(len(dataset)):
            yield dataset[index]
        dataset.on_epoch_end()

    return tf.data.Dataset.from_generator(batches, output_signature=signature)


def all_gather_object(strategy, value, num_processes):
    """Every process's picklable `value`, in process order (two all-gathers
    of bytes over the strategy's collectives)."""
    import tensorflow as tf

    payload = np.frombuffer(pickle.dumps(value), np.uint8)
    lengths = _all_gather(strategy, tf.constant([len(payload)], tf.int64)).numpy()
    # The collectives take no uint8: one byte an int32.
    padded = np.zeros(int(lengths.max()), np.int32)
    padded[: len(payload)] = payload
    gathered = _all_gather(strategy, tf.constant(padded[None, :])).numpy()
    # One row a replica: a process with several devices sent its value once a device.
    step = len(lengths) // num_processes
    return [pickle.loads(row[:length].astype(np.uint8).tobytes()) for row, length in zip(gathered[::step], lengths[::step])]


def _all_gather(strategy, tensor):
    import tensorflow as tf

    def gather():
        return tf.distribute.get_replica_context().all_gather(tensor, axis=0)

    result = strategy.run(gather)
    return strategy.experimental_local_results(result)[0]

