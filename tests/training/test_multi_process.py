"""Multi-process training (`--distribute --num-processes N`), with real processes on 127.0.0.1.

Each test starts `gradattn-train` processes for the suite's backend and
bounds every wait. The runs are tiny: a synthetic dataset without
augmentation, a narrow ResNet-18 layout (one block a stage, 8 to 64 channels;
BatchNorm, no dropout), one process thread each.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_gradattn import models  # noqa: F401 (registers the classes best.keras holds)
from keras_gradattn.analysis.event_reader import find_event_files
from keras_gradattn.analysis.event_reader import read_events
from keras_gradattn.callbacks import TrainingJournal

BACKEND = keras.backend.backend()
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Backends whose processes can train together.
MULTI_PROCESS_BACKENDS = ("jax", "tensorflow", "torch")
needs_multi_process = pytest.mark.skipif(
    BACKEND not in MULTI_PROCESS_BACKENDS, reason=f"multi-process training: {', '.join(MULTI_PROCESS_BACKENDS)}"
)
# 64 of the 280 training images and a batch of 64: one batch an epoch, so
# that the two runs see the same rows in each step whatever the shuffle.
TINY_RUN = [
    "--dataset", "synthetic", "--dataset-arg", "num_examples=400", "--dataset-arg", "image_size=32",
    "--model", "resnet18", "--model-arg", "stage_blocks=(1, 1, 1, 1)", "--model-arg", "stage_widths=(8, 16, 32, 64)",
    "--model-arg", "stem_width=8", "--max-train-samples", "64", "--batch-size", "64", "--probe-batches", "0",
    "--verbose", "2", "--log-gradients", "1",
]  # fmt: skip
# JAX, 2 processes on the loaded 2-core machine (load 8): the resumed 3-epoch run took 250-300 s.
PROCESS_TIMEOUT_S = 480


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment():
    # One thread a process: two processes share this machine's cores. Keras'
    # portable BatchNorm in every run: several PyTorch processes synchronize
    # its statistics in that path, so one process must run the same kernels
    # for the comparison to be of float noise only (the fused kernel agrees
    # with it to rounding, which Adam can turn into a step on a tiny gradient).
    return dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", KERAS_BACKEND=BACKEND,
                GRADATTN_PORTABLE_LAYERS="1")


def _command(output_dir, *flags):
    return [sys.executable, "-m", "keras_gradattn.cli.train", "--backend", BACKEND, *TINY_RUN,
            "--output-dir", str(output_dir), *flags]  # fmt: skip


def _start_group(output_dir, count, *flags, logs):
    coordinator = f"127.0.0.1:{_free_port()}"
    processes = []
    for process_id in range(count):
        log = open(logs / f"process{process_id}.log", "w")
        command = _command(output_dir, "--distribute", "--num-processes", str(count), "--process-id",
                           str(process_id), "--coordinator", coordinator, "--process-timeout", "180", *flags)  # fmt: skip
        processes.append(subprocess.Popen(command, env=_environment(), stdout=log, stderr=subprocess.STDOUT))
    return processes


def _wait_all(processes, timeout=PROCESS_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    try:
        return [process.wait(timeout=max(1.0, deadline - time.monotonic())) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _weights(path):
    import keras_gradattn.models  # noqa: F401  (registers the classes a saved model names)

    model = keras.saving.load_model(path)
    return [np.asarray(weight) for weight in model.get_weights()]


@needs_multi_process
# The group on the device data path trains as the one process on the host
# pipeline: each process holds every split and feeds its share of the rows.
@pytest.mark.parametrize("placement", ["host", "device"])
def test_two_processes_train_like_one(placement, tmp_path):
    single = tmp_path / "single"
    result = subprocess.run(_command(single, "--epochs", "3"), env=_environment(), capture_output=True,
                            text=True, timeout=PROCESS_TIMEOUT_S)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    group = tmp_path / "group"
    codes = _wait_all(_start_group(group, 2, "--epochs", "3", "--data-placement", placement, logs=tmp_path))
    assert codes == [0, 0], (tmp_path / "process0.log").read_text()[-3000:]
    assert json.loads((group / "metrics.json").read_text())["data_placement"] == placement

    one, two = (TrainingJournal.read_history(run / "history.csv") for run in (single, group))
    assert len(one) == len(two) == 3
    # Float noise only: each process sums half the batch, and the halves'
    # gradients and BatchNorm moments are summed across processes, in another
    # order than on one process. Measured on the 2-core CPU (torch, jax,
    # tensorflow): losses within 1.5e-7 relative, validation losses within
    # 2e-7, 99% of the final weights within 1.5e-8 and all within 1.5e-5. The
    # bounds leave room for other CPUs: an Adam step moves a weight by up to
    # the learning rate (1e-3) whatever its gradient's size, so rounding noise
    # in a near-zero gradient can become a full step.
    assert two[0]["loss"] == pytest.approx(one[0]["loss"], rel=1e-5)
    for row_one, row_two in zip(one, two):
        assert row_two["loss"] == pytest.approx(row_one["loss"], rel=1e-4, abs=1e-6), (row_one, row_two)
        assert row_two["val_loss"] == pytest.approx(row_one["val_loss"], rel=1e-3), (row_one, row_two)
        assert row_two["accuracy"] == pytest.approx(row_one["accuracy"], abs=1e-6)
    one_weights, two_weights = (_weights(run / "best.keras") for run in (single, group))
    differences = np.concatenate([np.abs(a - b).ravel() for a, b in zip(one_weights, two_weights)])
    assert np.quantile(differences, 0.99) < 1e-6
    assert differences.max() < 1e-3

    metrics_one, metrics_two = (json.loads((run / "metrics.json").read_text()) for run in (single, group))
    # The test split is shared out and gathered: every example counted once.
    assert metrics_two["num_examples"] == metrics_one["num_examples"] == 60
    assert metrics_two["nll"] == pytest.approx(metrics_one["nll"], rel=1e-3)
    assert metrics_two["num_processes"] == 2 and metrics_one["num_processes"] == 1
    distribution = json.loads((group / "config.json").read_text())["distribution"]
    assert distribution["num_processes"] == 2 and len(distribution["devices"]) == 2
    # The gradient logger saw the averaged gradients (every logged norm is the
    # one-process run's), and process 0 alone wrote them.
    assert len(find_event_files(group / "logs" / "gradients")) == 1
    logged_one, logged_two = (read_events(run / "logs" / "gradients").scalars for run in (single, group))
    norm_tags = [tag for tag in logged_one if tag.startswith(("grad_norm", "weight_norm"))]
    assert "grad_norm_global" in norm_tags and sorted(logged_two) == sorted(logged_one)
    assert len(logged_one["grad_norm_global"][1]) == 3  # --log-gradients 1: every step
    for tag in norm_tags:
        (steps_one, norms_one), (steps_two, norms_two) = logged_one[tag], logged_two[tag]
        assert list(steps_two) == list(steps_one), tag
        # Float noise (measured: within 5e-6 relative on every backend).
        assert np.allclose(norms_two, norms_one, rtol=1e-4), tag
    # Process 1 wrote nothing beside process 0's files.
    assert sorted(os.listdir(tmp_path)) == ["group", "process0.log", "process1.log", "single"]


@needs_multi_process
def test_a_killed_process_stops_the_others_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    # Four steps an epoch; process 1 dies in epoch 2 of 3.
    flags = ["--epochs", "3", "--max-train-samples", "256"]
    processes = _start_group(run, 2, *flags, logs=tmp_path)
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while time.monotonic() < deadline and len(_history_rows(run)) < 1:
            assert all(process.poll() is None for process in processes), (tmp_path / "process0.log").read_text()
            time.sleep(0.2)
        assert len(_history_rows(run)) == 1, "no epoch finished in time"
        processes[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        code = processes[0].wait(timeout=90)
        waited = time.monotonic() - killed
    finally:
        _wait_all(processes, timeout=5)
    log = (tmp_path / "process0.log").read_text()
    errors = [line for line in log.splitlines() if ": error: " in line]
    assert code == 4, log[-3000:]
    assert len(errors) == 1 and "another process stopped answering" in errors[0] and "--resume" in errors[0]
    assert "Traceback" not in log
    assert waited < 60
    assert json.loads((run / "status.json").read_text())["status"] == "running"
    assert len(_history_rows(run)) < 3

    # Resumable: every process restarted with --resume finishes the run.
    codes = _wait_all(_start_group(run, 2, *flags, "--resume", logs=tmp_path))
    assert codes == [0, 0], (tmp_path / "process0.log").read_text()[-3000:]
    assert [row["epoch"] for row in _history_rows(run)] == [1, 2, 3]
    assert json.loads((run / "status.json").read_text())["status"] == "finished"


def _history_rows(run):
    path = run / "history.csv"
    return TrainingJournal.read_history(path) if path.exists() else []


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--distribute", "--num-processes", "2", "--process-id", "2", "--coordinator", "127.0.0.1:29999"],
         "--process-id must be an integer from 0 to 1"),
        (["--distribute", "--num-processes", "2", "--process-id", "0", "--coordinator", "127.0.0.1:29999",
          "--batch-size", "33"], "must be a multiple of the 2 processes"),
        (["--distribute", "--num-processes", "2", "--process-id", "0", "--coordinator", "localhost"],
         "--coordinator must be HOST:PORT"),
        (["--distribute", "--num-processes", "2", "--process-id", "1"], "needs --coordinator HOST:PORT"),
        (["--num-processes", "2", "--process-id", "1", "--coordinator", "127.0.0.1:29999"],
         "--num-processes needs --distribute"),
    ],
    ids=["process-id-out-of-range", "batch-not-divisible", "malformed-coordinator", "no-coordinator",
         "no-distribute"],
)  # fmt: skip
def test_bad_process_flags_are_one_line_and_write_nothing(tmp_path, capsys, flags, message):
    # Refused before any process connects: in this process, on every backend.
    from keras_gradattn.cli.train import main

    run = tmp_path / "run"
    code = main(_command(run, "--epochs", "1", *flags)[3:])
    stderr = capsys.readouterr().err
    assert code == 2, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1 and message in lines[0], stderr[-3000:]
    assert not run.exists()


@needs_multi_process
def test_an_unreachable_coordinator_is_a_bounded_one_line_error(tmp_path):
    run = tmp_path / "run"
    flags = ["--distribute", "--num-processes", "2", "--process-id", "1", "--coordinator",
             f"127.0.0.1:{_free_port()}", "--process-timeout", "5", "--epochs", "1"]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(_command(run, *flags), env=_environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1 and "could not reach the coordinator" in lines[0], result.stderr[-3000:]
    assert time.monotonic() - started < 90
    assert not run.exists()


# TensorFlow under torchrun: its workers would listen on MASTER_PORT + i,
# and torchrun's own store holds MASTER_PORT; TensorFlow's launchers set TF_CONFIG.
@pytest.mark.skipif(BACKEND != "torch", reason="torchrun launches torch runs")
def test_torchrun_starts_a_run_from_its_environment(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(_free_port()), "-m", "keras_gradattn.cli.train", "--backend", BACKEND,
               "--distribute", *TINY_RUN, "--epochs", "1", "--output-dir", str(run)]  # fmt: skip
    result = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    distribution = json.loads((run / "config.json").read_text())["distribution"]
    assert distribution["launcher"] == "torchrun" and distribution["num_processes"] == 2
    assert json.loads((run / "metrics.json").read_text())["num_examples"] == 60


def _launcher_environment(process_id, addresses):
    # What each backend's own launchers set: Keras' variables for JAX,
    # TF_CONFIG for TensorFlow (a cluster manager such as SLURM writes them).
    if BACKEND == "jax":
        return {"KERAS_DISTRIBUTION_NUM_PROCESSES": str(len(addresses)),
                "KERAS_DISTRIBUTION_PROCESS_ID": str(process_id),
                "KERAS_DISTRIBUTION_JOB_ADDRESSES": ",".join(addresses)}  # fmt: skip
    return {"TF_CONFIG": json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": process_id}})}


@pytest.mark.skipif(BACKEND not in ("jax", "tensorflow"), reason="Keras' variables (JAX), TF_CONFIG (TensorFlow)")
def test_a_launcher_environment_starts_a_run(tmp_path):
    run = tmp_path / "run"
    addresses = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    processes = []
    for process_id in range(2):
        log = open(tmp_path / f"process{process_id}.log", "w")
        environment = dict(_environment(), **_launcher_environment(process_id, addresses))
        command = _command(run, "--distribute", "--epochs", "1", "--process-timeout", "180")
        processes.append(subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT))
    assert _wait_all(processes) == [0, 0], (tmp_path / "process0.log").read_text()[-3000:]
    distribution = json.loads((run / "config.json").read_text())["distribution"]
    assert distribution["launcher"] == ("keras" if BACKEND == "jax" else "tf_config")
    assert distribution["num_processes"] == 2 and len(distribution["devices"]) == 2
    assert json.loads((run / "metrics.json").read_text())["num_examples"] == 60
