"""Where the grid's cells run: one at a time, several at once on this machine, or on a Ray cluster.

The grid (`experiments/grid.py`) decides which cells need running and what
each one's `gradattn-train` command is; an executor only runs those commands
and reports, in the grid's own thread, each cell as it starts and ends:

- `LocalExecutor(jobs=1)`: one cell after another (the default).
- `LocalExecutor(jobs=N, devices=..., cpus=...)`: N cells at once on this
  machine. Each of N slots owns its share of the GPUs (`CUDA_VISIBLE_DEVICES`,
  which TensorFlow, JAX and PyTorch all honour) and of the CPU cores (the
  process is pinned to them, and the thread pools of the three backends are
  sized to them), so that N runs neither share a GPU nor oversubscribe the
  cores.
- `RayExecutor(address, cpus_per_run, gpus_per_run)`: each cell is a Ray task
  asking for its CPUs and GPUs; Ray places it on a machine of the cluster and
  sets its `CUDA_VISIBLE_DEVICES`. The runs directory must be on storage every
  machine sees (the results are read back from it, as on one machine).

`execute` yields `CellStarted` and `CellEnded` events. An exception raised
while running a cell (a command that cannot be started, an unreachable Ray
worker) ends that cell with the error, never the grid. Ctrl-C (or any
exception in the grid's thread) stops every running cell's process group,
SIGTERM first, and is re-raised.
"""

import concurrent.futures
import dataclasses
import os
import queue
import sys
import time

from keras_gradattn.utils.dependencies import PACKAGE_PARENT

# Environment variables that size the backends' CPU thread pools: OpenMP
# (PyTorch, oneDNN), MKL and TensorFlow's own. XLA (JAX) sizes its pool from
# the CPUs the process may run on, hence the pinning as well.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
# Read by `grid.run_subprocess`: the CPUs to pin the run's process to.
CPU_AFFINITY_VARIABLE = "GRADATTN_CPU_AFFINITY"


class ExecutorSetupError(ValueError):
    """The executor cannot be set up as asked (bad jobs/devices, Ray missing)."""


@dataclasses.dataclass(frozen=True)
class CellJob:
    """One command to run: `key` is the grid's cell (a `GridRun`)."""

    key: object
    command: tuple
    log_path: str
    backend: str


@dataclasses.dataclass(frozen=True)
class CellStarted:
    job: CellJob
    where: str


@dataclasses.dataclass(frozen=True)
class CellEnded:
    """`exit_status` None: timed out; `error`: the exception that ended it, if any."""

    job: CellJob
    exit_status: object
    duration: float
    error: BaseException = None


@dataclasses.dataclass(frozen=True)
class Slot:
    """What one concurrently running cell may use."""

    index: int
    devices: tuple = None  # GPU ids, or None: leave CUDA_VISIBLE_DEVICES alone
    cpus: tuple = None  # CPU ids, or None: no pinning

    def environment(self, base):
        environment = dict(base)
        if self.devices is not None:
            environment["CUDA_VISIBLE_DEVICES"] = ",".join(self.devices)
        if self.cpus is not None:
            for name in THREAD_VARIABLES:
                environment[name] = str(len(self.cpus))
            environment[CPU_AFFINITY_VARIABLE] = ",".join(map(str, self.cpus))
        return environment

    def describe(self):
        parts = []
        if self.devices is not None:
            parts.append(f"GPU {','.join(self.devices)}")
        if self.cpus is not None:
            parts.append(f"CPU {_ranges(self.cpus)}")
        return f"slot {self.index}" + (f" ({'; '.join(parts)})" if parts else "")


def _ranges(numbers):
    """`(0, 1, 2, 5)` -> "0-2,5"."""
    spans, start, previous = [], None, None
    for number in sorted(numbers):
        if start is None:
            start = previous = number
        elif number == previous + 1:
            previous = number
        else:
            spans.append((start, previous))
            start = previous = number
    if start is not None:
        spans.append((start, previous))
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def available_cpus():
    """The CPU ids this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def plan_slots(jobs, devices=None, cpus=None):
    """Splits `devices` (GPU ids) and `cpus` into `jobs` equal, disjoint slots.

    With one job nothing is pinned (a lone run may use the whole machine).
    Raises `ExecutorSetupError` when the GPUs do not split evenly, or when
    there are more jobs than CPUs.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ExecutorSetupError(f"jobs must be a positive integer; received {jobs!r}")
    if devices is not None:
        devices = tuple(str(device) for device in devices)
        if not devices:
            raise ExecutorSetupError("devices is empty; give GPU ids such as 0,1,2,3")
        if len(set(devices)) != len(devices):
            raise ExecutorSetupError(f"devices lists a GPU twice: {','.join(devices)}")
        if len(devices) % jobs:
            raise ExecutorSetupError(
                f"{len(devices)} GPUs ({','.join(devices)}) do not split evenly over {jobs} jobs; "
                f"allowed: a number of jobs that divides {len(devices)}"
            )
    if jobs == 1:
        return [Slot(0, devices=devices)]
    cpus = tuple(cpus) if cpus is not None else available_cpus()
    if jobs > len(cpus):
        raise ExecutorSetupError(
            f"{jobs} jobs would oversubscribe the {len(cpus)} CPUs this process may use; "
            f"allowed: 1..{len(cpus)}"
        )
    slots = []
    per_job_devices = len(devices) // jobs if devices else 0
    for index in range(jobs):
        # Cores split as evenly as they go: the first `len % jobs` slots get one more.
        begin = index * len(cpus) // jobs
        end = (index + 1) * len(cpus) // jobs
        slot_devices = devices[index * per_job_devices:(index + 1) * per_job_devices] if devices else None
        slots.append(Slot(index, devices=slot_devices, cpus=cpus[begin:end]))
    return slots


def _run_job(job, runner, environment, timeout):
    started = time.monotonic()
    try:
        status = runner(list(job.command), job.log_path, environment, timeout)
        return CellEnded(job, status, time.monotonic() - started)
    except Exception as error:  # noqa: BLE001 - a cell's failure must not stop the grid
        return CellEnded(job, None, time.monotonic() - started, error)


class LocalExecutor:
    """Runs cells on this machine, `jobs` at a time, each in its own slot."""

    def __init__(self, jobs=1, devices=None, cpus=None):
        self.slots = plan_slots(jobs, devices, cpus)

    @property
    def jobs(self):
        return len(self.slots)

    def describe(self):
        if self.jobs == 1:
            return "one run at a time"
        return f"{self.jobs} runs at a time: " + "; ".join(slot.describe() for slot in self.slots)

    def execute(self, jobs, runner, timeout, environment_for, stop_all=None):
        """Yields `CellStarted` / `CellEnded` for each of `jobs`.

        Args:
            runner: `runner(command, log_path, environment, timeout)` -> exit status or None.
            environment_for: `backend -> environment` of a run's process.
            stop_all: called (no arguments) to stop every running process when the
                grid's thread is interrupted.
        """
        if self.jobs == 1:
            slot = self.slots[0]
            for job in jobs:
                yield CellStarted(job, slot.describe())
                yield _run_job(job, runner, slot.environment(environment_for(job.backend)), timeout)
            return
        events = queue.Queue()
        free_slots = queue.Queue()
        for slot in self.slots:
            free_slots.put(slot)

        def work(job):
            slot = free_slots.get()
            try:
                events.put(CellStarted(job, slot.describe()))
                environment = slot.environment(environment_for(job.backend))
                events.put(_run_job(job, runner, environment, timeout))
            finally:
                free_slots.put(slot)

        pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="grid-cell")
        futures = [pool.submit(work, job) for job in jobs]
        try:
            for _ in range(2 * len(futures)):
                yield _next_event(events)
        except BaseException:
            for future in futures:
                future.cancel()
            if stop_all:
                stop_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _next_event(events):
    # A short timeout keeps the wait interruptible by Ctrl-C on every platform.
    while True:
        try:
            return events.get(timeout=0.2)
        except queue.Empty:
            continue


def ray_available():
    from keras_gradattn.utils.dependencies import module_available

    return module_available("ray")


RAY_INSTALL = 'pip install "ray>=2.9"'


def _run_on_worker(command, log_path, backend, timeout, driver_python):
    """A Ray task: runs one cell on whatever machine Ray chose."""
    from keras_gradattn.experiments import grid

    command = list(command)
    if command[0] == driver_python:
        # The driver's interpreter path need not exist on the worker's machine.
        command[0] = sys.executable
    started = time.monotonic()
    status = grid.run_subprocess(command, log_path, grid.training_environment(backend), timeout)
    return status, time.monotonic() - started


class RayExecutor:
    """Runs each cell as a Ray task that asks for `cpus_per_run` CPUs and `gpus_per_run` GPUs.

    Args:
        address: a running cluster (`"auto"`, `"ray://host:10001"`), or
            `"local"` to start a Ray instance on this machine for the grid.
    """

    def __init__(self, address="local", cpus_per_run=1, gpus_per_run=0):
        if not ray_available():
            raise ExecutorSetupError(f"--ray needs the ray package; install it with: {RAY_INSTALL}")
        if not (isinstance(cpus_per_run, (int, float)) and cpus_per_run > 0):
            raise ExecutorSetupError(f"cpus_per_run must be > 0; received {cpus_per_run!r}")
        if not (isinstance(gpus_per_run, (int, float)) and gpus_per_run >= 0):
            raise ExecutorSetupError(f"gpus_per_run must be >= 0; received {gpus_per_run!r}")
        self.address = address
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run

    def describe(self):
        where = "a local Ray instance" if self.address == "local" else f"the Ray cluster at {self.address}"
        return f"on {where}, {self.cpus_per_run} CPU and {self.gpus_per_run} GPU per run"

    def _connect(self):
        import ray

        options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if self.address == "local":
            # The workers of a local instance import this checkout, as the runs do.
            options["runtime_env"] = {"env_vars": {"PYTHONPATH": PACKAGE_PARENT}}
            ray.init(num_cpus=len(available_cpus()), **options)
        else:
            ray.init(address=self.address, **options)
        return ray

    def execute(self, jobs, runner, timeout, environment_for, stop_all=None):
        """Yields `CellStarted` (when submitted) / `CellEnded` events.

        `runner` and `environment_for` are not used: a run's process is started
        by `grid.run_subprocess` on the worker, with that machine's environment.
        """
        ray = self._connect()
        try:
            task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run)(_run_on_worker)
            pending = {}
            for job in jobs:
                reference = task.remote(job.command, job.log_path, job.backend, timeout, sys.executable)
                pending[reference] = (job, time.monotonic())
                yield CellStarted(job, "submitted to Ray")
            try:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                    for reference in ready:
                        job, submitted = pending.pop(reference)
                        try:
                            status, duration = ray.get(reference)
                            yield CellEnded(job, status, duration)
                        except Exception as error:  # noqa: BLE001 - the cell failed, not the grid
                            yield CellEnded(job, None, time.monotonic() - submitted, error)
            except BaseException:
                # Cancelling raises KeyboardInterrupt inside each running task,
                # where run_subprocess stops its run's process group.
                for reference in pending:
                    ray.cancel(reference)
                for reference in pending:
                    try:
                        ray.get(reference, timeout=60)
                    except Exception:  # noqa: BLE001 - cancelled tasks raise here by design
                        pass
                raise
        finally:
            ray.shutdown()
