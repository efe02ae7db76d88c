"""The run directory's lock: one process at a time, named in the refusal, and
a killed holder never blocks the next run."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from keras_gradattn.training import RunDirectoryInUse
from keras_gradattn.training import TrainConfig
from keras_gradattn.training.run_directory import check_output_dir
from keras_gradattn.training.run_lock import LOCK_FILE
from keras_gradattn.training.run_lock import RunLock
from testing_utils import REPOSITORY

pytestmark = [
    pytest.mark.backend_independent,
    pytest.mark.skipif(sys.platform == "win32", reason="no flock on Windows: runs are unguarded there"),
]

# Takes the lock, says so, then waits to be killed (bounded, in case the test is).
HOLDER = """
import sys, time
from keras_gradattn.training.run_lock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""


def start_holder(run_dir):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=REPOSITORY),
    )  # fmt: skip
    assert process.stdout.readline().strip() == "held"
    return process


def stop(process):
    process.kill()
    process.wait(timeout=10)
    process.stdout.close()


def snapshot(folder):
    """Every file under `folder` with its bytes and modification time."""
    files = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as file:
                files[os.path.relpath(path, folder)] = (file.read(), os.stat(path).st_mtime_ns)
    return files


def test_a_second_process_is_refused_and_told_who_holds_it(tmp_path):
    run_dir = tmp_path / "run"
    holder = start_holder(run_dir)
    try:
        before = snapshot(run_dir)
        with pytest.raises(RunDirectoryInUse) as refused:
            RunLock(run_dir).acquire()
        message = str(refused.value)
        assert "\n" not in message
        assert f"in use by process {holder.pid} on host {socket.gethostname()} (started " in message
        assert str(run_dir) in message and "--output-dir" in message
        assert snapshot(run_dir) == before  # the refused process changed nothing
    finally:
        stop(holder)


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    run_dir = tmp_path / "run"
    holder = start_holder(run_dir)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    holder.stdout.close()
    assert os.path.exists(run_dir / LOCK_FILE)  # left behind, but no longer held
    with RunLock(run_dir) as lock:
        assert lock.held
        assert f'"pid": {os.getpid()}' in (run_dir / LOCK_FILE).read_text()
    assert not os.path.exists(run_dir / LOCK_FILE)


def test_release_removes_only_what_acquire_created(tmp_path):
    run_dir = tmp_path / "a" / "b" / "run"
    with RunLock(run_dir):
        assert os.listdir(run_dir) == [LOCK_FILE]
    assert os.listdir(tmp_path) == []  # nothing written: every created folder removed
    (tmp_path / "existing").mkdir()
    with RunLock(tmp_path / "existing" / "run"):
        (tmp_path / "existing" / "run" / "history.csv").write_text("epoch\n")
    assert os.listdir(tmp_path / "existing" / "run") == ["history.csv"]
    # One process may take it again after releasing it; a second holder in
    # the same process is refused like any other.
    with RunLock(run_dir):
        with pytest.raises(RunDirectoryInUse):
            RunLock(run_dir).acquire()


def test_the_lock_file_alone_does_not_make_a_directory_foreign(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_FILE).write_text("")  # a stale one, from a run killed before writing anything
    assert check_output_dir(TrainConfig(output_dir=str(run_dir)).resolved()) == "new"
