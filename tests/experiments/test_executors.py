"""Where the grid's cells run: slots for N jobs, concurrency, pinning, failures, Ctrl-C, Ray."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from keras_gradattn.experiments import executors
from keras_gradattn.experiments import grid
from keras_gradattn.utils.dependencies import module_available
from testing_utils import REPOSITORY

pytestmark = pytest.mark.backend_independent


def test_slots_split_gpus_and_cores_evenly_and_disjointly():
    slots = executors.plan_slots(2, devices=["0", "1", "2", "3"], cpus=(0, 1, 2, 3, 4))
    assert [slot.devices for slot in slots] == [("0", "1"), ("2", "3")]
    assert [slot.cpus for slot in slots] == [(0, 1), (2, 3, 4)]
    environment = slots[1].environment({"KERAS_BACKEND": "jax"})
    assert environment["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert environment["OMP_NUM_THREADS"] == environment["TF_NUM_INTRAOP_THREADS"] == "3"
    assert environment[executors.CPU_AFFINITY_VARIABLE] == "2,3,4"
    assert slots[1].describe() == "slot 1 (GPU 2,3; CPU 2-4)"


def test_one_job_pins_nothing():
    (slot,) = executors.plan_slots(1)
    assert slot.environment({"A": "1"}) == {"A": "1"}


@pytest.mark.parametrize(
    "jobs, devices, cpus, message",
    [
        (0, None, (0, 1), r"jobs must be a positive integer; received 0"),
        (3, ["0", "1"], (0, 1, 2), r"2 GPUs \(0,1\) do not split evenly over 3 jobs; allowed: a number of jobs that divides 2"),
        (2, ["0", "0"], (0, 1), r"devices lists a GPU twice: 0,0"),
        (3, None, (0, 1), r"3 jobs would oversubscribe the 2 CPUs this process may use; allowed: 1\.\.2"),
    ],
)  # fmt: skip
def test_bad_slot_requests_say_what_is_allowed(jobs, devices, cpus, message):
    with pytest.raises(executors.ExecutorSetupError, match=message):
        executors.plan_slots(jobs, devices=devices, cpus=cpus)


def _jobs(count):
    return [executors.CellJob(index, ("run", str(index)), f"/tmp/log{index}", "jax") for index in range(count)]


def test_two_jobs_run_at_once_each_in_its_own_slot():
    # Each fake run waits for the other: with one cell at a time the barrier would break.
    barrier = threading.Barrier(2, timeout=10)
    seen = []

    def runner(command, log_path, environment, timeout):
        seen.append((command[1], environment["CUDA_VISIBLE_DEVICES"], environment[executors.CPU_AFFINITY_VARIABLE]))
        barrier.wait()
        return 0

    executor = executors.LocalExecutor(jobs=2, devices=["0", "1"], cpus=(0, 1))
    events = list(executor.execute(_jobs(2), runner, None, lambda backend: {}))
    ended = [event for event in events if isinstance(event, executors.CellEnded)]
    assert sorted(event.exit_status for event in ended) == [0, 0]
    assert all(event.error is None for event in ended)
    assert sorted(slot for _, slot, _ in seen) == ["0", "1"]
    assert sorted(cpus for _, _, cpus in seen) == ["0", "1"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_runner_that_raises_fails_its_cell_only(tmp_path, jobs):
    plan = grid.build_plan(["digits"], ["resnet18", "gradattn_rope", "gradattn_nope"], [42], ["jax"])

    def runner(command, log_path, environment, timeout):
        run_dir = command[command.index("--output-dir") + 1]
        if "gradattn_rope" in command:
            raise OSError("[Errno 7] Argument list too long")
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "status.json"), "w") as file:
            json.dump({"status": "finished"}, file)
        return 0

    lines = []
    executor = executors.LocalExecutor(jobs=jobs, cpus=(0, 1))
    outcome = grid.run_grid(plan, str(tmp_path), grid.Budget(), runner=runner, report=lines.append, executor=executor)
    assert sorted(run.model for run in outcome.ran) == ["gradattn_nope", "resnet18"]
    assert [failure.run.model for failure in outcome.failed] == ["gradattn_rope"]
    assert outcome.failed[0].reason == "could not be run: OSError: [Errno 7] Argument list too long"
    assert "2 run, 0 already finished, 1 failed" in lines[-2]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU pinning is Linux-only")
def test_run_subprocess_pins_the_run_to_its_cpus(tmp_path):
    cpu = executors.available_cpus()[-1]
    log = tmp_path / "run.log"
    command = [sys.executable, "-c", "import os; print('cpus', sorted(os.sched_getaffinity(0)), os.environ.get('GRADATTN_CPU_AFFINITY'))"]
    status = grid.run_subprocess(command, str(log), dict(os.environ, GRADATTN_CPU_AFFINITY=str(cpu)))
    assert status == 0
    # Pinned to that one CPU, and the variable is not passed on to the run.
    assert f"cpus [{cpu}] None" in log.read_text()


# A stand-in for `python -m keras_gradattn.cli.train`: records its pid, then
# either finishes the run at once or trains "forever".
FAKE_TRAIN = """\
import json, os, sys, time
arguments = sys.argv[1:]
run_dir = arguments[arguments.index("--output-dir") + 1]
os.makedirs(run_dir, exist_ok=True)
with open(os.path.join(run_dir, "pid"), "w") as file:
    file.write(str(os.getpid()))
if os.environ.get("FAKE_TRAIN_SECONDS"):
    time.sleep(float(os.environ["FAKE_TRAIN_SECONDS"]))
with open(os.path.join(run_dir, "status.json"), "w") as file:
    json.dump({"status": "finished"}, file)
"""


def _fake_python(tmp_path):
    script = tmp_path / "fake_python"
    script.write_text(f"#!{sys.executable}\n" + FAKE_TRAIN)
    script.chmod(0o755)
    return str(script)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().split()[2] != "Z"
    except OSError:
        return True


@pytest.mark.skipif(len(executors.available_cpus()) < 2, reason="two jobs need two CPUs")
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups and SIGINT")
def test_ctrl_c_stops_every_running_cell(tmp_path):
    runs = tmp_path / "runs"
    driver = textwrap.dedent(f"""
        import sys
        from keras_gradattn.experiments import executors, grid
        plan = grid.build_plan(["digits"], ["resnet18", "gradattn_rope"], [42], ["jax"])
        try:
            grid.run_grid(plan, {str(runs)!r}, grid.Budget(), python={_fake_python(tmp_path)!r},
                          executor=executors.LocalExecutor(jobs=2), report=lambda line: print(line, flush=True))
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
    """)
    environment = dict(os.environ, FAKE_TRAIN_SECONDS="120", PYTHONPATH=REPOSITORY)
    parent = subprocess.Popen([sys.executable, "-c", driver], env=environment, stdout=subprocess.PIPE, text=True)
    pid_files = [runs / "digits" / model / "seed42-jax" / "pid" for model in ("resnet18", "gradattn_rope")]
    deadline = time.monotonic() + 60
    while not all(path.exists() and path.read_text() for path in pid_files):
        assert time.monotonic() < deadline, "the two cells never started"
        assert parent.poll() is None, parent.stdout.read()
        time.sleep(0.1)
    children = [int(path.read_text()) for path in pid_files]
    assert all(_alive(pid) for pid in children)
    parent.send_signal(signal.SIGINT)
    output, _ = parent.communicate(timeout=60)
    assert parent.returncode == 130, output
    assert "interrupted" in output
    assert not any(_alive(pid) for pid in children)


@pytest.mark.skipif(not module_available("ray"), reason="ray is not installed (pip install ray)")
def test_a_local_ray_instance_runs_the_grid(tmp_path):
    plan = grid.build_plan(["digits"], ["resnet18", "gradattn_rope"], [42], ["jax"])
    lines = []
    executor = executors.RayExecutor("local", cpus_per_run=1)
    outcome = grid.run_grid(
        plan, str(tmp_path), grid.Budget(), python=_fake_python(tmp_path), report=lines.append, executor=executor
    )
    assert sorted(run.model for run in outcome.ran) == ["gradattn_rope", "resnet18"], lines
    assert not outcome.failed
    assert lines[0] == "2 runs to do, on a local Ray instance, 1 CPU and 0 GPU per run"
    # Each run ran as its own process, and a rerun skips both.
    pids = {(tmp_path / run.relative_dir / "pid").read_text() for run in plan}
    assert len(pids) == 2
    again = grid.run_grid(plan, str(tmp_path), grid.Budget(), report=lambda line: None, executor=executor)
    assert again.skipped == plan and not again.ran


def test_ray_missing_is_named_with_its_install_command(monkeypatch):
    monkeypatch.setattr(executors, "ray_available", lambda: False)
    with pytest.raises(executors.ExecutorSetupError, match=r"^--ray needs the ray package; install it with: pip install"):
        executors.RayExecutor("local")
