"""Which of N cooperating training processes this one is.

A multi-process run is N copies of the same `gradattn-train --distribute`
command, one per process (one per GPU, or per machine), that train one model
together. Each copy learns its place from explicit flags
(`--num-processes N --process-id I --coordinator HOST:PORT`) or, without
them, from the environment of the launcher that started it:

| launcher | variables read |
| --- | --- |
| torchrun (any backend) | `WORLD_SIZE`, `RANK`, `MASTER_ADDR`, `MASTER_PORT` |
| Keras' JAX convention | `KERAS_DISTRIBUTION_NUM_PROCESSES`, `KERAS_DISTRIBUTION_PROCESS_ID`, `KERAS_DISTRIBUTION_JOB_ADDRESSES` (first address: the coordinator) |
| TensorFlow | `TF_CONFIG` (its `cluster.worker` list and `task.index`; the first worker is the coordinator) |

Flags win over the environment; a partial set of flags is completed from the
environment. Process 0 is the chief: it alone writes the run directory.
"""

import dataclasses
import ipaddress
import json
import os

from keras_gradattn.training.errors import TrainingSetupError

# How long a process waits for the others, at the start and in every
# collective, before giving up with an error (seconds).
DEFAULT_TIMEOUT_SECONDS = 300


@dataclasses.dataclass(frozen=True)
class ProcessGroupSpec:
    """This process's place in a run of `num_processes` processes.

    Attributes:
        num_processes: processes that train the model together (1: alone).
        process_id: this process's index, `0 <= process_id < num_processes`.
        coordinator: `"HOST:PORT"` where process 0 listens for the others;
            None for a single process.
        launcher: where the settings came from: `"flags"`, `"torchrun"`,
            `"keras"` (KERAS_DISTRIBUTION_*), `"tf_config"` or `"single"`.
        timeout_seconds: the wait for the other processes before an error.
        worker_addresses: every process's `"HOST:PORT"` when the launcher
            gave them (TF_CONFIG, KERAS_DISTRIBUTION_JOB_ADDRESSES).
    """

    num_processes: int = 1
    process_id: int = 0
    coordinator: str = None
    launcher: str = "single"
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    worker_addresses: tuple = ()

    @property
    def multi_process(self):
        return self.num_processes > 1

    @property
    def is_chief(self):
        return self.process_id == 0

    @property
    def coordinator_host(self):
        return split_address(self.coordinator)[0]

    @property
    def coordinator_port(self):
        return split_address(self.coordinator)[1]

    def describe(self):
        """What config.json and metrics.json record of the process group."""
        return {
            "num_processes": self.num_processes,
            "process_id": self.process_id,
            "coordinator": self.coordinator,
            "launcher": self.launcher,
        }


def split_address(address):
    """`"HOST:PORT"` -> `(host, port)`; `TrainingSetupError` when malformed.

    IPv6 hosts go in brackets (`"[::1]:29500"`).
    """
    text = str(address).strip()
    host, separator, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TrainingSetupError(
            f"--coordinator must be HOST:PORT with a port from 1 to 65535 (e.g. 10.0.0.1:29500), got {address!r}."
        )
    return host, int(port)


def _integer(value, source):
    try:
        return int(str(value).strip())
    except ValueError:
        raise TrainingSetupError(f"{source} must be an integer, got {value!r}.") from None


def _from_environment(environ):
    """`(num_processes, process_id, coordinator, launcher, addresses)` from a
    launcher's variables, or None when no launcher set any."""
    if "WORLD_SIZE" in environ or "RANK" in environ:
        address = environ.get("MASTER_ADDR"), environ.get("MASTER_PORT")
        coordinator = f"{address[0]}:{address[1]}" if all(address) else None
        return (
            _integer(environ.get("WORLD_SIZE", 1), "WORLD_SIZE"),
            _integer(environ.get("RANK", 0), "RANK"),
            coordinator, "torchrun", (),
        )  # fmt: skip
    if "KERAS_DISTRIBUTION_NUM_PROCESSES" in environ or "KERAS_DISTRIBUTION_PROCESS_ID" in environ:
        addresses = tuple(
            part.strip() for part in environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "").split(",") if part.strip()
        )
        return (
            _integer(environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", len(addresses) or 1),
                     "KERAS_DISTRIBUTION_NUM_PROCESSES"),
            _integer(environ.get("KERAS_DISTRIBUTION_PROCESS_ID", 0), "KERAS_DISTRIBUTION_PROCESS_ID"),
            addresses[0] if addresses else None, "keras", addresses,
        )  # fmt: skip
    if environ.get("TF_CONFIG"):
        try:
            tf_config = json.loads(environ["TF_CONFIG"])
            workers = tuple(tf_config["cluster"]["worker"])
            task = tf_config.get("task", {})
            index = int(task.get("index", 0))
        except (ValueError, KeyError, TypeError) as error:
            raise TrainingSetupError(
                f"TF_CONFIG must be JSON with cluster.worker (a list of HOST:PORT) and task.index; "
                f"it could not be read ({type(error).__name__}: {error})."
            ) from None
        if task.get("type", "worker") != "worker":
            raise TrainingSetupError(
                f"TF_CONFIG task.type must be 'worker' (every process trains), got {task.get('type')!r}."
            )
        return len(workers), index, workers[0] if workers else None, "tf_config", workers
    return None


def resolve_process_group(num_processes=None, process_id=None, coordinator=None, timeout_seconds=None,
                          environ=None):  # fmt: skip
    """The `ProcessGroupSpec` from flags, completed from the launcher's environment.

    Raises `TrainingSetupError` (one line: what was wrong, what is allowed)
    for a process id outside `[0, num_processes)`, a missing or malformed
    coordinator, or a non-positive count or timeout.
    """
    environ = os.environ if environ is None else environ
    found = _from_environment(environ) if num_processes is None or process_id is None or not coordinator else None
    launcher, addresses = "flags", ()
    if found is not None:
        env_count, env_id, env_coordinator, env_launcher, addresses = found
        if num_processes is None and process_id is None and not coordinator:
            launcher = env_launcher
        num_processes = env_count if num_processes is None else num_processes
        process_id = env_id if process_id is None else process_id
        coordinator = coordinator or env_coordinator
    num_processes = 1 if num_processes is None else num_processes
    process_id = 0 if process_id is None else process_id
    timeout_seconds = DEFAULT_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise TrainingSetupError(f"--num-processes must be a positive integer, got {num_processes!r}.")
    if isinstance(process_id, bool) or not isinstance(process_id, int) or not 0 <= process_id < num_processes:
        raise TrainingSetupError(
            f"--process-id must be an integer from 0 to {num_processes - 1} (--num-processes {num_processes}), "
            f"got {process_id!r}."
        )
    if not isinstance(timeout_seconds, (int, float)) or isinstance(timeout_seconds, bool) or timeout_seconds <= 0:
        raise TrainingSetupError(f"--process-timeout must be a positive number of seconds, got {timeout_seconds!r}.")
    if num_processes == 1:
        return ProcessGroupSpec(timeout_seconds=timeout_seconds, launcher="single" if found is None else launcher)
    if not coordinator:
        raise TrainingSetupError(
            f"--num-processes {num_processes} needs --coordinator HOST:PORT (process 0's address, the same "
            "for every process), or a launcher's MASTER_ADDR/MASTER_PORT, KERAS_DISTRIBUTION_JOB_ADDRESSES "
            "or TF_CONFIG."
        )
    host, port = split_address(coordinator)
    return ProcessGroupSpec(
        num_processes=num_processes, process_id=process_id, coordinator=f"{_bracketed(host)}:{port}",
        launcher=launcher, timeout_seconds=float(timeout_seconds), worker_addresses=tuple(addresses),
    )  # fmt: skip


def _bracketed(host):
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host
