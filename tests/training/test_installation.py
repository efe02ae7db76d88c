"""What a run needs installed and what it computes on: the check before
training, the devices line and config.json's record, the GPU warning."""

import dataclasses
import json
import os
import sys

import keras
import pytest

from keras_gradattn.backend import compute_devices
from keras_gradattn.backend import only_cpus
from keras_gradattn.cli.train import main
from keras_gradattn.training import installation
from keras_gradattn.training.config import TrainConfig
from keras_gradattn.training.trainer import run_training
from testing_utils import SMALL_BACKBONE

BACKEND = keras.backend.backend()
TINY_RUN = TrainConfig(
    dataset="synthetic", model="resnet18", max_train_samples=32, batch_size=16, epochs=1,
    dataset_args={"num_examples": 100}, model_args={**SMALL_BACKBONE, "stage_blocks": (1, 1, 1, 1)},
    probe_batches=0, log_gradients=1, verbose=1,
)  # fmt: skip
FAKE_GPU = "Fake GPU 9000"


def block(monkeypatch, *modules):
    """Makes `modules` missing, as on a machine without them: a None entry in
    sys.modules makes `import` raise ImportError and `find_spec` say None."""
    for name in modules:
        for loaded in [key for key in sys.modules if key == name or key.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def fake_nvidia_smi(tmp_path, monkeypatch):
    """An nvidia-smi first on PATH that lists one GPU."""
    folder = tmp_path / "fake_bin"
    folder.mkdir()
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\necho '{FAKE_GPU}'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_a_missing_dataset_package_is_one_line_with_the_pip_command(monkeypatch, tmp_path, capsys):
    block(monkeypatch, "sklearn")
    run_dir = tmp_path / "run"
    assert main(["--output-dir", run_dir, "--epochs", "1"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("train.py: error: missing package(s) scikit-learn (for the digits dataset)")
    assert "pip install scikit-learn" in lines[0]
    assert not run_dir.exists()


def test_every_missing_package_is_named_at_once(monkeypatch):
    block(monkeypatch, "sklearn", "tensorboard", "tensorflow")
    config = dataclasses.replace(TinyDigits, pipeline="tf.data")
    with pytest.raises(Exception, match="install with: pip install scikit-learn tensorflow tensorboard ") as caught:
        installation.check_packages(config)
    assert "--pipeline tf.data" in str(caught.value) and "gradient logs" in str(caught.value)


def test_gradient_logs_need_tensorboard_only_when_on(monkeypatch):
    block(monkeypatch, "tensorboard", "tensorflow")
    modules = [requirement.module for requirement in installation.missing_packages(TINY_RUN.resolved())]
    assert modules == ["tensorboard"]
    off = dataclasses.replace(TINY_RUN, log_gradients=0).resolved()
    assert installation.missing_packages(off) == []


def test_matplotlib_missing_is_a_notice_not_an_error(monkeypatch):
    block(monkeypatch, "matplotlib")
    notices = installation.check_packages(TINY_RUN.resolved())
    assert notices == [
        "note: matplotlib is not installed: confusion_matrix.png will be skipped (pip install matplotlib)"
    ]


def test_devices_line_config_record_and_gpu_warning(fake_nvidia_smi, tmp_path, capsys):
    config = dataclasses.replace(TINY_RUN, output_dir=str(tmp_path / "run"))
    run_training(config)
    out, err = capsys.readouterr()
    devices = compute_devices()
    assert f"Devices ({BACKEND} backend): {', '.join(devices)}" in out.splitlines()
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["devices"] == {"backend": BACKEND, "devices": devices, "nvidia_gpus": [FAKE_GPU]}
    warnings = [line for line in err.splitlines() if line.startswith("warning: this machine has NVIDIA GPU")]
    if only_cpus(devices):
        assert len(warnings) == 1, err
        assert FAKE_GPU in warnings[0] and f"the {BACKEND} backend sees only CPUs" in warnings[0]
        assert installation.GPU_INSTALLS[BACKEND] in warnings[0]
        # Before training: ahead of the first epoch's output.
        assert out.index("Devices (") < out.index("Epoch 1")
    else:
        assert warnings == []


def test_no_warning_without_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi there
    description = installation.describe_devices()
    assert description["nvidia_gpus"] == []
    assert installation.gpu_advice(description) is None


@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch"])
def test_the_warning_names_each_backends_gpu_install(backend):
    advice = installation.gpu_advice({"backend": backend, "devices": ["cpu:0"], "nvidia_gpus": ["H200"]})
    assert "\n" not in advice and "pip install" in advice
    assert installation.gpu_advice({"backend": backend, "devices": ["cuda:0 (H200)"], "nvidia_gpus": ["H200"]}) is None


def test_devices_are_named_by_kind():
    devices = compute_devices()
    assert devices and all(device.split(":")[0] in ("cpu", "gpu", "cuda", "mps", "tpu", "xpu") for device in devices)


TinyDigits = dataclasses.replace(TINY_RUN, dataset="digits", dataset_args={}).resolved()
