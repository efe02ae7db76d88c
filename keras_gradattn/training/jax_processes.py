"""Data parallelism over processes for Keras' JAX backend.

Keras' `DataParallel` distribution already spans every process's devices
once `jax.distributed` is initialized: each process feeds its share of the
global batch, Keras assembles the global array
(`jax.make_array_from_process_local_data`) and the compiled step runs on it,
so the loss, the gradients and the BatchNorm statistics are the global
batch's, as on one process, and every process gets the same metrics back.
What this module adds (measured on this package's CPU tests, tests/training/test_jax_processes.py):

- bounded waits: `jax.distributed.initialize` with the group's timeout as
  initialization, heartbeat and shutdown timeouts (Keras' own `initialize`
  passes none: minutes by default), and a check of the coordinator address
  first, because JAX aborts the process (SIGABRT or a segmentation fault,
  nothing Python can catch) when process 0 cannot listen on its port or the
  others cannot reach it;
- `predict`, which Keras cannot finish on several processes (its outputs
  span devices of other processes): each batch's outputs are cut down to this
  process's rows, in order;
- object collectives (pickles over `multihost_utils`);
- a shutdown that first waits for every process: JAX's shutdown barrier
  aborts every process when they arrive further apart than its timeout.

A process that dies makes the others' next collective raise (gloo: the
connection was reset) within a second; one that hangs is detected by the
heartbeat, and JAX then aborts the survivors (exit status 134) after at most
the group's timeout. After a lost process the survivors must not shut JAX
down (it would wait for the lost one, then abort): they leave at once.
"""

import math
import pickle
import re
import socket
import time

import jax
import numpy as np
from jax.experimental import multihost_utils

from keras_gradattn.training.errors import TrainingSetupError

# Between two attempts to reach the coordinator (seconds).
_CONNECT_RETRY_S = 0.5


# Words of the errors JAX's collectives raise when a peer is gone.
_LOST_PROCESS_MARKERS = ("Gloo", "Connection closed", "Connection reset", "heartbeat", "DEADLINE_EXCEEDED")


def lost_process_reason(error):
    """The line of `error` that says another process is gone, without its
    source location, or None when `error` says nothing of the kind.

    A dead peer makes JAX's next collective raise a `JaxRuntimeError`
    (`UNKNOWN: Gloo all-reduce failed: [.../pair.cc:538] Read error ...:
    Connection reset by peer`), or the same message as a `ValueError` when it
    happens in the equality check of a `device_put`.
    """
    if not isinstance(error, (jax.errors.JaxRuntimeError, ValueError)):
        return None
    for line in str(error).splitlines():
        if any(marker in line for marker in _LOST_PROCESS_MARKERS):
            line = re.sub(r"^[A-Z_]+: ", "", line.strip())
            return re.sub(r"\[[^\]]*\.cc:\d+\]\s*", "", line)[:160]
    return None


def connect(spec):
    """Joins the process group `spec` describes (`jax.distributed`).

    Must run before JAX computes anything in this process. Raises
    `TrainingSetupError` when process 0 cannot listen on the coordinator
    address, or another process cannot reach it within the timeout.
    """
    _check_coordinator(spec)
    timeout = max(1, math.ceil(spec.timeout_seconds))
    try:
        jax.distributed.initialize(
            spec.coordinator, num_processes=spec.num_processes, process_id=spec.process_id,
            initialization_timeout=timeout, heartbeat_timeout_seconds=timeout, shutdown_timeout_seconds=timeout,
        )  # fmt: skip
    except RuntimeError as error:
        # "must be called before any JAX computations", or twice in one process.
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise TrainingSetupError(
            f"process {spec.process_id} of {spec.num_processes} could not join the JAX process group "
            f"({first_line}); start each process of a multi-process run as its own command."
        ) from None
    return "gloo" if jax.default_backend() == "cpu" else jax.default_backend()


def _check_coordinator(spec):
    host, port = spec.coordinator_host, spec.coordinator_port
    if spec.is_chief:
        try:
            _try_listening(port)
        except OSError as error:
            raise TrainingSetupError(
                f"process 0 of {spec.num_processes} could not listen on the coordinator {spec.coordinator} "
                f"({error.strerror or error}); choose a free port for --coordinator."
            ) from None
        return
    deadline = time.monotonic() + spec.timeout_seconds
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(2.0, deadline - time.monotonic()))):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise TrainingSetupError(
                    f"process {spec.process_id} of {spec.num_processes} could not reach the coordinator "
                    f"{spec.coordinator} within {spec.timeout_seconds:g} s ({error.strerror or error}); start "
                    "process 0 first, with the same --coordinator for every process, or raise --process-timeout."
                ) from None
            time.sleep(_CONNECT_RETRY_S)


def _try_listening(port):
    """Binds `port` on every address, as JAX's coordinator will ("[::]:port")."""
    if socket.has_dualstack_ipv6():
        server = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    else:
        server = socket.create_server(("", port))
    server.close()


def shutdown():
    """Waits for every process, then shuts `jax.distributed` down.

    Returns False, without shutting down, when another process is gone (a
    shutdown would wait for it, then abort this process)."""
    try:
        multihost_utils.sync_global_devices("keras_gradattn: shutdown")
    except Exception as error:
        if lost_process_reason(error) is None:
            raise
        return False
    jax.distributed.shutdown()
    return True


def broadcast_object(value):
    """Process 0's `value` (any picklable object), on every process."""
    payload = _to_bytes(value) if jax.process_index() == 0 else np.zeros(0, np.uint8)
    length = int(multihost_utils.broadcast_one_to_all(np.array(len(payload), np.int32)))
    if jax.process_index() != 0:
        payload = np.zeros(length, np.uint8)
    return pickle.loads(np.asarray(multihost_utils.broadcast_one_to_all(payload)).tobytes())


def all_gather_object(value):
    """Every process's `value`, in process order."""
    payload = _to_bytes(value)
    lengths = np.asarray(multihost_utils.process_allgather(np.array([len(payload)], np.int32))).reshape(-1)
    padded = np.zeros(int(lengths.max()), np.uint8)
    padded[: len(payload)] = payload
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    return [pickle.loads(row[:length].tobytes()) for row, length in zip(gathered, lengths)]


def _to_bytes(value):
    return np.frombuffer(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), np.uint8)


def predict_local_rows(model):
    """Makes `model.predict` return this process's rows of each batch.

    On several processes each output batch is a global array, partly on other
    processes' devices; Keras' `predict` fails when it copies it to NumPy.
    The predict function is wrapped (an instance attribute: saved files never
    see it) to keep this process's shards, in batch order.
    """
    make_predict_function = model.make_predict_function

    def make_local_predict_function(force=False):
        make_predict_function(force)  # sets model.predict_function
        function = model.predict_function
        if not getattr(function, "keeps_local_rows", False):
            function = _keeping_local_rows(function)
            model.predict_function = function
        return function

    model.make_predict_function = make_local_predict_function
    return model


def _keeping_local_rows(predict_function):
    def local_predict_function(state, iterator):
        outputs, state = predict_function(state, iterator)
        return jax.tree_util.tree_map(_local_rows, outputs), state

    local_predict_function.keeps_local_rows = True
    return local_predict_function


def _local_rows(array):
    if not isinstance(array, jax.Array) or array.is_fully_addressable:
        return array
    shards = sorted(array.addressable_shards, key=lambda shard: shard.index[0].start or 0)
    return np.concatenate([np.asarray(shard.data) for shard in shards])
