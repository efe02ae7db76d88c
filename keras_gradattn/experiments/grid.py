"""A grid of training runs (datasets x models x seeds x backends), one subprocess each.

Each cell is one `gradattn-train` run with the paper's protocol in its own
process: backends can differ from cell to cell (Keras fixes its backend at
import), and a crash, an out-of-memory kill or a diverging model stays local
to its cell. Run directories are `<runs_dir>/<dataset>/<model>/seed<k>-<backend>`.

A run directory's `status.json` decides what happens to its cell:
finished -> skipped; diverged -> reported, not retried (the same flags would
diverge again); anything else -> `gradattn-train --resume`, which starts a
new run or continues an interrupted one from its last finished epoch.

The parent process only plans, starts and watches; all training happens in the runs.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

from keras_gradattn.experiments.executors import CPU_AFFINITY_VARIABLE
from keras_gradattn.experiments.executors import CellEnded
from keras_gradattn.experiments.executors import CellJob
from keras_gradattn.experiments.executors import LocalExecutor
from keras_gradattn.utils.dependencies import with_package_on_path

NEW, RESUME, FINISHED, DIVERGED = "new", "resume", "finished", "diverged"
# The files of a run directory worth keeping with the results: small, text,
# and enough to recompute every table. Not best.keras (43-50 MB) nor the
# TensorBoard event logs.
COLLECTED_FILES = (
    "config.json",
    "status.json",
    "history.csv",
    "best.json",
    "metrics.json",
    "gradient_probe.json",
)
# How long a stopped run (timed out, or Ctrl-C) gets to save and exit after SIGTERM.
TERMINATE_GRACE_SECONDS = 30


@dataclasses.dataclass(frozen=True)
class GridRun:
    """One cell of the grid: a model trained on a dataset with a seed under a backend.

    `model_args` are the `--model-arg KEY=VALUE` texts that apply to this
    model (encoder sizes apply to GradAttn models only).
    """

    dataset: str
    model: str
    seed: int
    backend: str
    model_args: tuple = ()

    @property
    def relative_dir(self):
        return os.path.join(self.dataset, self.model, f"seed{self.seed}-{self.backend}")

    @property
    def label(self):
        return f"{self.dataset} {self.model} seed {self.seed} ({self.backend})"


@dataclasses.dataclass(frozen=True)
class Budget:
    """The flags every run of the grid shares; `None` keeps gradattn-train's default."""

    epochs: int = None
    max_train_samples: int = None
    batch_size: int = None
    probe_batches: int = None
    data_dir: str = None
    dataset_args: tuple = ()

    def train_arguments(self):
        arguments = []
        for flag, value in (
            ("--epochs", self.epochs),
            ("--max-train-samples", self.max_train_samples),
            ("--batch-size", self.batch_size),
            ("--probe-batches", self.probe_batches),
            ("--data-dir", self.data_dir),
        ):
            if value is not None:
                arguments += [flag, str(value)]
        for text in self.dataset_args:
            arguments += ["--dataset-arg", text]
        return arguments

    def to_record(self):
        return dataclasses.asdict(self)


def build_plan(datasets, models, seeds, backends, model_args_for=None):
    """The grid's runs, in the order they are run.

    Seeds vary slower than models, so a grid cut short still holds every
    model for the seeds it reached: complete pairs for the paired comparison.

    Args:
        model_args_for: optional callable `model -> tuple of "KEY=VALUE"`.
    """
    plan = []
    for dataset in datasets:
        for seed in seeds:
            for model in models:
                model_args = tuple(model_args_for(model)) if model_args_for else ()
                for backend in backends:
                    plan.append(GridRun(dataset, model, int(seed), backend, model_args))
    return plan


def read_status(run_dir):
    """The run's `status.json` as a dict, or None when it has none (or it is unreadable)."""
    try:
        with open(os.path.join(run_dir, "status.json")) as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def run_state(run_dir):
    """NEW, RESUME, FINISHED or DIVERGED, from what the run directory holds."""
    status = read_status(run_dir)
    if status is not None:
        if status.get("status") == FINISHED:
            return FINISHED
        if status.get("status") == DIVERGED:
            return DIVERGED
    if os.path.exists(os.path.join(run_dir, "config.json")):
        return RESUME
    return NEW


def train_command(run, run_dir, budget, python=None):
    """The `gradattn-train` command line of one cell (always with --resume:
    it starts a run that does not exist and continues one that does)."""
    command = [
        python or sys.executable, "-m", "keras_gradattn.cli.train",
        "--dataset", run.dataset, "--model", run.model, "--seed", str(run.seed),
        "--backend", run.backend, "--output-dir", run_dir, "--resume", "--verbose", "2",
    ]  # fmt: skip
    command += budget.train_arguments()
    for text in run.model_args:
        command += ["--model-arg", text]
    return command


def training_environment(backend):
    """The environment of a run's subprocess: its backend, this checkout on the path."""
    environment = with_package_on_path(dict(os.environ, KERAS_BACKEND=backend))
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


# The process groups of the runs now running (several with `--jobs`), so
# that Ctrl-C in the grid's thread can stop every one of them.
_LIVE_PROCESSES = set()
_LIVE_LOCK = threading.Lock()


def run_subprocess(command, log_path, environment, timeout=None, terminate_grace_seconds=TERMINATE_GRACE_SECONDS):
    """Runs `command` with its output appended to `log_path`.

    Returns the exit status, or None when it ran past `timeout` seconds (it
    is then stopped with SIGTERM, SIGKILL `terminate_grace_seconds` later;
    its run directory stays resumable). Ctrl-C stops the run's whole process
    group the same way (a second Ctrl-C sends SIGKILL at once) and is
    re-raised. What was sent, and why, is appended to the log.
    `GRADATTN_CPU_AFFINITY` in `environment` ("0,1") pins
    the process to those CPUs (Linux), and is not passed on.
    """
    environment = dict(environment)
    cpus = environment.pop(CPU_AFFINITY_VARIABLE, None)
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(command)}\n")
        log.flush()
        # Its own process group (a new POSIX session), so stopping it also
        # stops anything it started, and a Ctrl-C in the terminal reaches
        # only this process, which then stops the run as below.
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
        with _LIVE_LOCK:
            _LIVE_PROCESSES.add(process)
        try:
            if cpus and hasattr(os, "sched_setaffinity"):
                # Set at once, before the interpreter it runs has started any
                # thread: threads inherit their creator's affinity.
                _pin(process.pid, cpus)
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process, log, f"ran past its {format_duration(timeout)} limit", terminate_grace_seconds)
            return None
        except BaseException:
            _stop(process, log, "the grid was interrupted", terminate_grace_seconds)
            raise
        finally:
            with _LIVE_LOCK:
                _LIVE_PROCESSES.discard(process)


def _pin(pid, cpus):
    try:
        os.sched_setaffinity(pid, {int(cpu) for cpu in cpus.split(",")})
    except (ProcessLookupError, OSError):
        pass  # already gone, or a CPU set the OS refuses: the run goes on unpinned


def stop_running_processes():
    """Stops every run this process started that is still running (SIGTERM, then SIGKILL)."""
    with _LIVE_LOCK:
        processes = list(_LIVE_PROCESSES)
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + TERMINATE_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process, sent_signal):
    try:
        os.killpg(process.pid, sent_signal)
    except ProcessLookupError:
        pass


def _stop(process, log, why, grace_seconds):
    """SIGTERM to the run's process group, SIGKILL if it is still there
    `grace_seconds` later (or at a second Ctrl-C meanwhile)."""

    def send(sent_signal, note):
        log.write(f"[grid] {note}; sending {sent_signal.name} to process group {process.pid}\n")
        log.flush()
        try:
            os.killpg(process.pid, sent_signal)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM, why)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL, f"still running {format_duration(grace_seconds)} after SIGTERM")
    except KeyboardInterrupt:
        send(signal.SIGKILL, "interrupted again while waiting")
        process.wait()
        raise
    else:
        # The run is gone; anything it started and left behind goes with it.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    process.wait()


def collect_run(run_dir, destination):
    """Copies the run's small text files (COLLECTED_FILES) into `destination`, atomically."""
    # Imported here: keras_gradattn.utils loads Keras (for its serialization
    # helpers), which planning, starting and watching runs never need.
    from keras_gradattn.utils.io import atomic_write_bytes

    copied = []
    for name in COLLECTED_FILES:
        source = os.path.join(run_dir, name)
        if not os.path.exists(source):
            continue
        with open(source, "rb") as file:
            atomic_write_bytes(os.path.join(destination, name), file.read())
        copied.append(name)
    return copied


@dataclasses.dataclass
class Failure:
    run: GridRun
    reason: str
    log_path: str


@dataclasses.dataclass
class GridOutcome:
    ran: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)


def format_duration(seconds):
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def last_log_line(log_path):
    """The last non-empty line of a log, for one-line failure reports."""
    try:
        with open(log_path, errors="replace") as file:
            lines = [line.strip() for line in file if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def run_grid(plan, runs_dir, budget, runner=None, on_finished=None, report=print,
             clock=time.monotonic, run_timeout=None, python=None, executor=None, finished_elsewhere=None):
    """Runs every cell of `plan` that is not finished.

    Args:
        plan: list of `GridRun` (see `build_plan`).
        runs_dir: where the run directories go.
        budget: the shared flags (`Budget`).
        runner: `runner(command, log_path, environment, timeout) -> exit status
            or None (timed out)`; default `run_subprocess`. Tests pass a fake.
            An exception from it (other than Ctrl-C's KeyboardInterrupt, which
            stops the grid) fails that cell only.
        on_finished: called as `on_finished(run, run_dir)` after each run that
            is (or already was) finished, e.g. to collect its files; an
            exception from it fails that cell only.
        report: receives one progress line at a time.
        run_timeout: seconds allowed per run (None: no limit).
        executor: where the cells run (`experiments.executors`); default
            `LocalExecutor()`, one at a time on this machine.
        finished_elsewhere: optional `run -> bool`: a cell with no run
            directory that this says is finished (its results were collected
            and kept, the run directory was not) is skipped, not run again.

    Returns:
        A `GridOutcome`: runs run, skipped (already finished) and failed (with
        the reason and the log). A failure never stops the grid.
    """
    runner = runner or run_subprocess
    executor = executor or LocalExecutor()
    outcome = GridOutcome()
    started = clock()
    numbers = {run: index for index, run in enumerate(plan, start=1)}

    def prefix(run):
        return f"run {numbers[run]}/{len(plan)}: {run.label}"

    def finish(run, run_dir, log_path):
        if on_finished is None:
            return
        try:
            on_finished(run, run_dir)
        except Exception as error:  # e.g. no space left to copy its files: the cell fails, the grid goes on
            reason = f"on_finished failed: {type(error).__name__}: {error}"
            outcome.failed.append(Failure(run, reason, log_path))
            report(f"{prefix(run)}: {reason}")

    jobs = []
    for run in plan:
        run_dir = os.path.join(runs_dir, run.relative_dir)
        state = run_state(run_dir)
        log_path = os.path.join(runs_dir, "logs", run.relative_dir.replace(os.sep, "-") + ".log")
        if state == FINISHED:
            outcome.skipped.append(run)
            report(f"{prefix(run)}: finished already, skipped")
            finish(run, run_dir, log_path)
            continue
        if state == NEW and finished_elsewhere is not None and finished_elsewhere(run):
            outcome.skipped.append(run)
            report(f"{prefix(run)}: finished already (its results are collected), skipped")
            continue
        if state == DIVERGED:
            status = read_status(run_dir) or {}
            reason = f"diverged in an earlier attempt ({status.get('message', 'see status.json')})"
            outcome.failed.append(Failure(run, reason, log_path))
            report(f"{prefix(run)}: {reason}; not retried")
            finish(run, run_dir, log_path)
            continue
        try:
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
        except OSError as error:  # e.g. no space, no permission: this cell cannot run, the others may
            reason = f"could not be run: {type(error).__name__}: {error}"
            outcome.failed.append(Failure(run, reason, log_path))
            report(f"{prefix(run)}: FAILED: {reason}")
            continue
        command = tuple(train_command(run, run_dir, budget, python=python))
        jobs.append(CellJob(run, command, log_path, run.backend))

    parallel = max(1, getattr(executor, "jobs", 1))
    described = parallel > 1 or not isinstance(executor, LocalExecutor)
    if jobs and described:
        report(f"{len(jobs)} runs to do, {executor.describe()}")
    durations, started_at = [], {}
    remaining = len(jobs)
    for event in executor.execute(jobs, runner, run_timeout, training_environment, stop_running_processes):
        run = event.job.key
        run_dir = os.path.join(runs_dir, run.relative_dir)
        if not isinstance(event, CellEnded):
            state = run_state(run_dir)
            eta = (sum(durations) / len(durations)) * remaining / parallel if durations else None
            where = f" | {event.where}" if described else ""
            report(
                f"{prefix(run)}: {'starting' if state == NEW else 'resuming'}{where} | elapsed "
                f"{format_duration(clock() - started)} | ETA {format_duration(eta)} | log {event.job.log_path}"
            )
            started_at[run] = clock()
            continue
        duration = clock() - started_at.pop(run)
        durations.append(duration)
        remaining -= 1
        final_state = run_state(run_dir)
        if event.error is None and event.exit_status == 0 and final_state == FINISHED:
            outcome.ran.append(run)
            report(f"{prefix(run)}: finished in {format_duration(duration)}")
        else:
            if event.error is not None:
                reason = f"could not be run: {type(event.error).__name__}: {event.error}"
            elif event.exit_status is None:
                reason = f"timed out after {format_duration(run_timeout)} (resumable)"
            elif event.exit_status == 0:
                # Exit 0 is not enough: only status.json says the run is complete.
                recorded = (read_status(run_dir) or {}).get("status")
                reason = f"exit 0 but status.json says {recorded!r}" if recorded else "exit 0 but no status.json"
            else:
                reason = f"exit {event.exit_status}: {last_log_line(event.job.log_path)}"
            outcome.failed.append(Failure(run, reason, event.job.log_path))
            report(f"{prefix(run)}: FAILED after {format_duration(duration)}: {reason}")
        if final_state in (FINISHED, DIVERGED):
            finish(run, run_dir, event.job.log_path)
    report(
        f"grid done in {format_duration(clock() - started)}: {len(outcome.ran)} run, "
        f"{len(outcome.skipped)} already finished, {len(outcome.failed)} failed"
    )
    for failure in outcome.failed:
        report(f"  failed: {failure.run.label}: {failure.reason} (log: {failure.log_path})")
    return outcome
