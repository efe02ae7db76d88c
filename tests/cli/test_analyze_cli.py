"""End to end: fit with the logger, probe, analyze; and the CLI's error path."""

import os
import subprocess
import sys

import keras
from gradflow_testing import DepthAttentionModel
from gradflow_testing import build_functional_model
from gradflow_testing import loss_object
from gradflow_testing import make_data

from keras_gradattn.analysis import probe_gradient_flow
from keras_gradattn.callbacks import GradientNormLogger
from keras_gradattn.cli.analyze import main
from testing_utils import REPOSITORY



def train_and_probe(run_dir, model, x, y):
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss_object())
    logger = GradientNormLogger(run_dir / "logs", update_freq=2, attention_batch=x[:8])
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[logger])
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 24, 8)]
    return probe_gradient_flow(model, batches, output_path=run_dir / "gradient_probe.json")


def test_fit_probe_and_analyze_two_runs(tmp_path, capsys):
    x, y = make_data(32)
    baseline = tmp_path / "baseline"
    probe = train_and_probe(baseline, build_functional_model(dropout=0.1), x, y)
    keras.utils.set_random_seed(0)
    depth = tmp_path / "depth_tokens"
    train_and_probe(depth, DepthAttentionModel(name="depth"), x, y)

    output = tmp_path / "analysis"
    assert main([str(baseline), str(depth), "--output", str(output)]) == 0

    expected = [
        "baseline_grad_norm_heatmap.png",
        "baseline_grad_norm_stages.png",
        "baseline_gradient_flow.png",
        "depth_tokens_grad_norm_heatmap.png",
        "depth_tokens_depth_attention.png",
        "depth_tokens_gradient_flow.png",
        "compare_grad_norm_stages.png",
        "compare_grad_norm_heatmaps.png",
        "compare_gradient_flow.png",
        "gradient_report.md",
    ]
    for name in expected:
        path = output / name
        assert path.exists() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (output / "gradient_report.md").read_text()
    for layer in probe.layer_names:
        assert f"`{layer}`" in report
    assert "`stage2/block1/norm`" in report  # a layer of the training logs (not probed: BatchNorm)
    assert "## baseline" in report and "## depth_tokens" in report
    assert f"{probe.statistics['health_score']:.1%}" in report
    assert not [name for name in os.listdir(output) if name.startswith(".")]  # no temporary left
    assert str(output / "gradient_report.md") in capsys.readouterr().out


def test_run_without_logs_is_a_one_line_error(tmp_path, capsys):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    assert main([str(empty), "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("analyze.py: error:") and "\n" not in error
    assert "empty_run" in error and "no TensorBoard logs" in error
    assert main([str(tmp_path / "missing"), "--output", str(tmp_path / "out")]) == 2


def test_script_exit_code_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPOSITORY, "scripts", "analyze.py"), str(tmp_path), "--output", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("analyze.py: error:")


def test_names_must_match_runs(tmp_path, capsys):
    assert main([str(tmp_path), "--names", "a", "b"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "analyze.py: error: --names needs one name per RUN_DIR; received 2 names for 1 runs"


def test_probe_only_run_is_analyzed(tmp_path):
    x, y = make_data(16)
    model = build_functional_model()
    run = tmp_path / "probed"
    probe_gradient_flow(model, [(x, y)], loss=loss_object(), output_path=run / "gradient_probe.json")
    assert main([str(run), "--output", str(tmp_path / "out")]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["gradient_report.md", "probed_gradient_flow.png"]
    assert "`stage1/block1/dense`" in (tmp_path / "out" / "gradient_report.md").read_text()
