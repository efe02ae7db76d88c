"""A run without matplotlib: figures are optional, the run's results are not."""

import dataclasses
import json
import sys
import warnings

import pytest

from keras_gradattn.training import plots
from keras_gradattn.training.config import TrainConfig
from keras_gradattn.training.trainer import run_training
from testing_utils import SMALL_BACKBONE

pytestmark = pytest.mark.backend_independent

TINY_RUN = TrainConfig(
    dataset="synthetic", model="resnet18", max_train_samples=32, batch_size=16, epochs=1,
    dataset_args={"num_examples": 100}, model_args={**SMALL_BACKBONE, "stage_blocks": (1, 1, 1, 1)},
    probe_batches=0, log_gradients=0, verbose=0,
)  # fmt: skip


@pytest.fixture
def without_matplotlib(monkeypatch):
    # A None entry in sys.modules makes `import matplotlib` raise ImportError,
    # as on a machine where it is not installed.
    for name in [name for name in sys.modules if name == "matplotlib" or name.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.setattr(plots, "_warned_about_missing_matplotlib", False, raising=False)


def test_a_run_without_matplotlib_finishes_and_skips_its_figure(without_matplotlib, tmp_path):
    config = dataclasses.replace(TINY_RUN, output_dir=str(tmp_path / "run"))
    with pytest.warns(UserWarning, match="matplotlib is not installed") as caught:
        result = run_training(config)
    assert len([warning for warning in caught if "matplotlib" in str(warning.message)]) == 1
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "finished"
    assert (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "run" / "confusion_matrix.png").exists()
    assert "top1_accuracy" in result.metrics


def test_the_missing_matplotlib_warning_comes_once(without_matplotlib, tmp_path):
    with pytest.warns(UserWarning, match="matplotlib is not installed"):
        assert plots.plot_confusion_matrix([[1, 0], [0, 1]], tmp_path / "a.png") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plots.plot_confusion_matrix([[1, 0], [0, 1]], tmp_path / "b.png") is None
    assert not list(tmp_path.iterdir())
