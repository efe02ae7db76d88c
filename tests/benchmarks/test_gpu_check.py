"""gpu_check.sh end to end on the CPU with tiny sizes (it measures nothing
here: the test is that it runs both benchmarks, names the device and judges
every target it has figures for), and its target logic on known figures."""

import json
import os
import subprocess

import pytest

from keras_gradattn.cli import gpu_check
from testing_utils import REPOSITORY

pytestmark = pytest.mark.backend_independent


def test_runs_end_to_end_on_a_cpu_and_writes_a_report_named_cpu(tmp_path):
    result = subprocess.run(
        ["bash", os.path.join(REPOSITORY, "scripts", "gpu_check.sh"), "--quick", "--backends", "torch", "--models",
         "resnet18", "--shapes", "28x28x1", "--precisions", "float32", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, KERAS_BACKEND="torch"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    name = gpu_check.device_name()
    report = (tmp_path / f"gpu_check_{gpu_check.device_slug(name)}.md").read_text()
    record = json.loads((tmp_path / f"gpu_check_{gpu_check.device_slug(name)}.json").read_text())
    assert record["device"] == name and record["quick"] and not record["failed"]
    if name == "cpu":
        assert "Device: CPU (no GPU found: these are not GPU figures)" in report
    assert "| resnet18 | 28x28x1 | float32 | plain_torch |" in report
    (row,) = record["end_to_end"]
    assert (row["backend"], row["model"], row["data_placement"]) == ("torch", "resnet18", "device")
    assert row["images_per_second"] > 0 and row["epoch_seconds"] > 0
    # Without JAX only the training-step target has figures: one verdict, PASS or MISS as its ratio says.
    (verdict,) = record["verdicts"]
    ratio = float(verdict["figure"].rstrip("x"))
    assert verdict["result"] == ("PASS" if ratio >= 1.0 else "MISS")
    assert f"| {verdict['target']} | {verdict['subject']} | {verdict['figure']} | {verdict['result']} |" in report
    # The two benchmarks' own files lie beside the report.
    assert (tmp_path / "gpu_check_epoch.md").exists() and (tmp_path / "gpu_check_steps_28x28x1_float32.md").exists()


def test_targets_on_known_figures():
    steps = {("32x32x3", "bfloat16"): {"summary": {"resnet18": {
        "plain_torch": {"ratio": 1.0, "images_per_second": 10_000.0},
        "jax": {"ratio": 1.4, "images_per_second": 14_000.0},
        "torch": {"ratio": 0.9, "images_per_second": 9_000.0},
    }}}}  # fmt: skip
    rows = [
        {"backend": "jax", "model": "resnet18", "images_per_second": 31_000.0},
        {"backend": "torch", "model": "resnet18", "images_per_second": 20_000.0},
        {"backend": "jax", "model": "gradattn_learned_pe", "images_per_second": 29_000.0},
        {"backend": "torch", "model": "gradattn_learned_pe", "images_per_second": 20_000.0},
    ]
    verdicts = {(target, subject): result for target, subject, _, result in gpu_check.evaluate_gpu_targets(steps, rows)}
    assert verdicts == {
        ("JAX end to end >= 30,000 img/s", "resnet18"): "PASS",
        ("torch end to end within 1.5x of JAX", "resnet18"): "MISS",  # 31,000 / 20,000 = 1.55
        ("JAX end to end >= 30,000 img/s", "gradattn_learned_pe"): "MISS",
        ("torch end to end within 1.5x of JAX", "gradattn_learned_pe"): "PASS",  # 29,000 / 20,000 = 1.45
        ("backend >= plain PyTorch (training step)", "resnet18, 32x32x3 bfloat16, jax"): "PASS",
        ("backend >= plain PyTorch (training step)", "resnet18, 32x32x3 bfloat16, torch"): "MISS",
    }
    assert gpu_check.device_slug("NVIDIA H100 80GB HBM3") == "nvidia_h100_80gb_hbm3"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--shapes", "28x28"], "input shape '28x28' is not HxWxC"),
        (["--precisions", "float16"], "float16"),
        (["--data-dir", "/nonexistent/fashion"], "--data-dir '/nonexistent/fashion' is not a folder"),
    ],
)
def test_bad_input_is_one_line_with_status_2(arguments, message, tmp_path, capsys):
    assert gpu_check.main([*arguments, "--output-dir", str(tmp_path / "out")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "out").exists()
