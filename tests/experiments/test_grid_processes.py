"""The grid's real runner against fake training processes that ignore SIGTERM:
a timeout (SIGTERM, then SIGKILL), Ctrl-C, and a second Ctrl-C; no process
of a stopped run may be left behind."""

import os
import signal
import subprocess
import sys
import time

import pytest

from experiments.test_grid import FakeRunner
from keras_gradattn.experiments import grid
from testing_utils import REPOSITORY

pytestmark = [
    pytest.mark.backend_independent,
    pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX"),
]

# A training process that will not stop when asked: it ignores SIGTERM (and
# says so), forks a child of its own, writes both pids, and sleeps. Only
# built-in modules, so it starts in milliseconds.
STUBBORN_RUN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: print("stubborn run: SIGTERM ignored", flush=True))
child = os.fork()
if child == 0:
    time.sleep(60)
    os._exit(0)
with open(sys.argv[1] + ".tmp", "w") as file:
    file.write(f"{os.getpid()} {child}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
print("stubborn run: started", flush=True)
time.sleep(60)
"""

# A grid of two stubborn cells in a process of its own, so that it can be sent SIGINT.
GRID_PARENT = """
import sys
from keras_gradattn.experiments import grid
runs_dir, grace, stubborn_run = sys.argv[1], float(sys.argv[2]), sys.argv[3]

def runner(command, log_path, environment, timeout):
    fake = [sys.executable, "-I", "-S", "-c", stubborn_run, log_path + ".pids"]
    return grid.run_subprocess(fake, log_path, environment, timeout, terminate_grace_seconds=grace)

plan = grid.build_plan(["digits"], ["resnet18", "gradattn_rope"], [42], ["jax"])
try:
    grid.run_grid(plan, runs_dir, grid.Budget(), runner=runner)
except KeyboardInterrupt:
    print("KeyboardInterrupt reached the caller", flush=True)
    sys.exit(130)
"""


def alive(pid):
    """Whether `pid` is a live process (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.02)


def read_pids(path):
    with open(path) as file:
        return [int(pid) for pid in file.read().split()]


def assert_all_gone(pids):
    # The stubborn run's own child is reaped by whoever adopts it; give it a moment.
    wait_for(lambda: not any(alive(pid) for pid in pids), 10, f"processes {pids} still running")


def log_lines(path):
    with open(path) as file:
        return [line.rstrip("\n") for line in file if line.strip()]


def test_a_timed_out_run_gets_sigterm_then_sigkill_and_the_grid_goes_on(tmp_path):
    plan = grid.build_plan(["digits"], ["resnet18", "gradattn_rope"], [42], ["jax"])
    others = FakeRunner()

    def runner(command, log_path, environment, timeout):
        if command[command.index("--model") + 1] != "resnet18":
            return others(command, log_path, environment, timeout)
        fake = [sys.executable, "-I", "-S", "-c", STUBBORN_RUN, log_path + ".pids"]
        return grid.run_subprocess(fake, log_path, environment, timeout, terminate_grace_seconds=1)

    outcome = grid.run_grid(plan, str(tmp_path), grid.Budget(), runner=runner, report=lambda line: None,
                            run_timeout=2)  # fmt: skip
    assert outcome.ran == [plan[1]]
    [failure] = outcome.failed
    assert failure.reason == "timed out after 0:00:02 (resumable)"
    lines = log_lines(failure.log_path)
    sigterm = lines.index(next(line for line in lines if "sending SIGTERM" in line))
    assert lines[sigterm].startswith("[grid] ran past its 0:00:02 limit; sending SIGTERM to process group ")
    assert lines[-1].startswith("[grid] still running 0:00:01 after SIGTERM; sending SIGKILL to process group ")
    # In between, the run (and its child, which shares its handler) ignored SIGTERM.
    assert set(lines[sigterm + 1 : -1]) == {"stubborn run: SIGTERM ignored"}
    assert_all_gone(read_pids(failure.log_path + ".pids"))


def start_grid_parent(tmp_path, grace):
    process = subprocess.Popen(
        [sys.executable, "-c", GRID_PARENT, str(tmp_path), str(grace), STUBBORN_RUN],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONPATH=REPOSITORY),
    )  # fmt: skip
    logs = tmp_path / "logs"
    first_log = logs / "digits-resnet18-seed42-jax.log"
    pid_file = str(first_log) + ".pids"
    wait_for(lambda: os.path.exists(pid_file) or process.poll() is not None, 60, "the first run's start")
    assert process.poll() is None, process.stdout.read()
    return process, first_log, read_pids(pid_file)


def finish(process, seconds):
    try:
        output, _ = process.communicate(timeout=seconds)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return output


def test_ctrl_c_stops_the_running_cell_and_the_grid(tmp_path):
    process, first_log, pids = start_grid_parent(tmp_path, grace=1)
    process.send_signal(signal.SIGINT)
    output = finish(process, 30)
    assert process.returncode == 130, output
    assert output.rstrip().endswith("KeyboardInterrupt reached the caller")
    assert_all_gone(pids)
    text = "\n".join(log_lines(first_log))
    assert "[grid] the grid was interrupted; sending SIGTERM" in text
    assert "[grid] still running 0:00:01 after SIGTERM; sending SIGKILL" in text
    assert not os.path.exists(tmp_path / "logs" / "digits-gradattn_rope-seed42-jax.log")  # not started


def test_a_second_ctrl_c_does_not_wait_out_the_grace_period(tmp_path):
    process, first_log, pids = start_grid_parent(tmp_path, grace=600)
    process.send_signal(signal.SIGINT)
    wait_for(lambda: "sending SIGTERM" in first_log.read_text(), 30, "SIGTERM after the first Ctrl-C")
    process.send_signal(signal.SIGINT)
    output = finish(process, 30)  # far less than the 600 s grace period
    assert process.returncode == 130, output
    assert_all_gone(pids)
    assert "[grid] interrupted again while waiting; sending SIGKILL" in first_log.read_text()
