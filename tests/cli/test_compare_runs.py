"""scripts/compare_runs.py: the distances it prints between two run directories."""

import importlib.util
import json
import os

import keras
import numpy as np
import pytest

from keras_gradattn.callbacks.summary_writer import create_summary_writer

pytestmark = pytest.mark.backend_independent

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_script():
    spec = importlib.util.spec_from_file_location("compare_runs", os.path.join(REPO, "scripts", "compare_runs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_run(directory, losses, val_losses, kernel, gradient_norms=None):
    directory.mkdir()
    if gradient_norms is not None:
        writer = create_summary_writer(str(directory / "logs" / "gradients"), implementation="python")
        for tag, values in gradient_norms.items():
            for step, value in enumerate(values, start=1):
                writer.scalar(tag, value, step)
        writer.close()
    lines = ["epoch,loss,val_loss"] + [f"{epoch},{loss},{val}" for epoch, (loss, val) in
                                        enumerate(zip(losses, val_losses), start=1)]  # fmt: skip
    (directory / "history.csv").write_text("\n".join(lines) + "\n")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, use_bias=False)])
    model.layers[0].set_weights([np.asarray(kernel, np.float32)])
    model.save(directory / "best.keras")


def test_distances_between_two_runs(tmp_path, capsys):
    compare_runs = _load_script()
    _write_run(tmp_path / "a", [2.0, 1.0], [4.0, 2.0], [[1.0, 2.0], [3.0, 4.0]])
    _write_run(tmp_path / "b", [2.2, 1.0], [4.0, 2.5], [[1.0, 2.0], [3.0, 4.5]])
    assert compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["epochs"] == 2 and figures["weights"] == 4
    assert figures["first_epoch_loss_relative"] == pytest.approx(0.1)
    assert figures["loss_relative_max"] == pytest.approx(0.1)
    assert figures["val_loss_relative_max"] == pytest.approx(0.25)
    assert figures["weights_abs_difference_max"] == pytest.approx(0.5)
    assert figures["weights_abs_difference_q99"] == pytest.approx(np.quantile([0, 0, 0, 0.5], 0.99))
    assert "gradient_norms_relative_max" not in figures  # neither run logged gradients


def test_distances_between_the_gradient_norms_two_runs_logged(tmp_path, capsys):
    compare_runs = _load_script()
    kernel = [[1.0, 2.0], [3.0, 4.0]]
    _write_run(tmp_path / "a", [2.0], [4.0], kernel, {"grad_norm_global": [1.0, 2.0], "weight_norm_global": [5.0]})
    _write_run(tmp_path / "b", [2.0], [4.0], kernel, {"grad_norm_global": [1.0, 2.5], "weight_norm_global": [9.0]})
    assert compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    # Gradient norms only (weight norms are the weights' business): step 2 is 25% off.
    assert json.loads(capsys.readouterr().out)["gradient_norms_relative_max"] == pytest.approx(0.25)


def test_a_directory_that_is_not_a_run_is_one_line_and_status_2(tmp_path, capsys):
    compare_runs = _load_script()
    with pytest.raises(SystemExit) as stop:
        compare_runs.main([str(tmp_path), str(tmp_path)])
    assert stop.value.code == 2
    assert "is not a finished run directory (no history.csv)" in capsys.readouterr().err
