"""An experiment's figures over seeds (validation accuracy per epoch, gradient
norm per layer) and the list of cells without a finished run, from fabricated
run folders."""

import csv
import json
import os

import pytest

from keras_gradattn.analysis.probe import PROBE_FORMAT
from keras_gradattn.experiments import experiment
from keras_gradattn.experiments import figures
from keras_gradattn.experiments import results_markdown
from reproduce_testing import fake_run

pytestmark = pytest.mark.backend_independent


def write_history(folder, val_accuracies):
    with open(os.path.join(folder, "history.csv"), "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", "accuracy", "loss", "val_accuracy", "val_loss"])
        for epoch, value in enumerate(val_accuracies, start=1):
            writer.writerow([epoch, 0.5, 1.0, value, 1.0])


def write_probe(folder, per_batch):
    layers = [{"name": f"layer{index}", "kind": "conv"} for index in range(len(per_batch[0]))]
    probe = {
        "format": PROBE_FORMAT, "model_name": "m", "backend": "tensorflow", "training": False,
        "loss": "sparse_categorical_crossentropy", "layers": layers, "per_batch": {"l2_norm": per_batch},
        "losses": [1.0] * len(per_batch), "missing_layers": [], "statistics": {},
    }  # fmt: skip
    with open(os.path.join(folder, "gradient_probe.json"), "w") as file:
        json.dump(probe, file)


def make_run(root, model, seed, val_accuracies, per_batch=None, backend="tensorflow", status="finished"):
    folder = os.path.join(root, "fashion_mnist", model, f"seed{seed}-{backend}")
    fake_run(folder, dataset="fashion_mnist", model=model, seed=seed, backend=backend, status=status)
    write_history(folder, val_accuracies)
    if per_batch is not None:
        write_probe(folder, per_batch)
    return folder


def test_epoch_band_averages_the_seeds_that_reached_each_epoch():
    histories = [
        {"epoch": [1, 2, 3], "val_accuracy": [50.0, 60.0, 70.0]},
        {"epoch": [1, 2], "val_accuracy": [40.0, 80.0]},  # stopped early
    ]
    epochs, means, stds, counts = figures.epoch_band(histories)
    assert epochs == [1, 2, 3]
    assert means == pytest.approx([45.0, 70.0, 70.0])
    assert counts == [2, 2, 1]
    # Sample standard deviation over the seeds present; none from one seed.
    assert stds == pytest.approx([7.0710678, 14.142136, 0.0])


def test_layer_norms_are_averaged_over_the_probe_batches(tmp_path):
    write_probe(tmp_path, [[1.0, 0.1, 0.01], [3.0, 0.3, 0.03]])
    assert figures.read_layer_norms(tmp_path) == pytest.approx([2.0, 0.2, 0.02])


def test_history_is_read_in_percent_and_a_run_without_one_is_skipped(tmp_path):
    write_history(tmp_path, [0.5, 0.75])
    assert figures.read_history(tmp_path) == {"epoch": [1, 2], "val_accuracy": [50.0, 75.0]}
    assert figures.read_history(tmp_path / "absent") is None


def test_write_tables_draws_both_figures_and_the_readme_shows_them(tmp_path):
    results = tmp_path / "exp"
    runs = results / "runs"
    for seed, shift in ((42, 0.0), (43, 0.02)):
        make_run(runs, "resnet18", seed, [0.6 + shift, 0.8, 0.85], [[0.1, 0.05]])
        make_run(runs, "gradattn_learned_pe", seed, [0.5, 0.7 + shift, 0.9, 0.88], [[0.2, 0.01, 0.03]])
    make_run(runs, "gradattn_learned_pe", 44, [0.1], status="diverged")
    experiment.record_invocation(
        str(results), "exp", {"datasets": ["fashion_mnist"], "models": ["resnet18", "gradattn_learned_pe"],
                              "seeds": [42, 43, 44], "backends": ["tensorflow"]}, {"epochs": 5}, "python run",
    )  # fmt: skip
    experiment.write_tables(str(results))
    for name in (figures.VALIDATION_FIGURE, figures.GRADIENT_FIGURE):
        with open(results / name, "rb") as file:
            assert file.read(8) == b"\x89PNG\r\n\x1a\n", name
    readme = (results / "README.md").read_text()
    assert f"![Validation accuracy per epoch]({figures.VALIDATION_FIGURE})" in readme
    assert f"![Gradient norm per layer]({figures.GRADIENT_FIGURE})" in readme
    # Seed 44 never finished (one diverged, one never started): both listed, nothing else.
    section = readme.split("Cells without a finished run")[1].split("##")[0]
    assert "- fashion_mnist `resnet18` (TensorFlow): seed 44" in section
    assert "- fashion_mnist `gradattn_learned_pe` (TensorFlow): seed 44" in section
    assert "42" not in section and "43" not in section
    document = results_markdown.results_document(str(tmp_path))
    assert f"](../results/exp/{figures.VALIDATION_FIGURE})" in document


def test_figures_with_nothing_to_draw_are_removed_not_left_stale(tmp_path):
    results = tmp_path / "exp"
    folder = make_run(results / "runs", "resnet18", 42, [0.6, 0.8], [[0.1, 0.05]])
    assert figures.write_figures(str(results)) == [figures.VALIDATION_FIGURE, figures.GRADIENT_FIGURE]
    os.remove(os.path.join(folder, "gradient_probe.json"))
    assert figures.write_figures(str(results)) == [figures.VALIDATION_FIGURE]
    assert not (results / figures.GRADIENT_FIGURE).exists()
    assert results_markdown.present_figures(str(results)) == (figures.VALIDATION_FIGURE,)


def test_invocations_recorded_without_a_grid_list_no_cells():
    meta = {"invocations": [{"command": "python old"}]}
    assert results_markdown.unfinished_cells(meta, []) == []
    meta["invocations"].append(
        {"command": "python new", "grid": {"datasets": ["digits"], "models": ["resnet18"], "seeds": [1, 2],
                                           "backends": ["jax"]}}
    )  # fmt: skip
    summary = [{"dataset": "digits", "model": "resnet18", "backend": "jax", "seeds": 1}]
    assert results_markdown.unfinished_cells(meta, summary) == [("digits", "resnet18", "jax", ["2"])]


def test_a_panel_with_more_models_than_can_be_told_apart_gets_no_figure(tmp_path):
    results = tmp_path / "exp"
    for index in range(figures.MAX_MODELS_PER_PANEL + 1):
        make_run(results / "runs", f"model{index}", 42, [0.6, 0.8], [[0.1, 0.05]])
    assert figures.write_figures(str(results)) == []
    assert results_markdown.present_figures(str(results)) == ()


def test_a_model_keeps_its_colour_in_every_panel():
    from keras_gradattn.utils.plotting import pyplot

    # Colours follow the tables' model order, not the order runs come in.
    runs = [({"model": "gradattn_rope"}, "a"), ({"model": "resnet18"}, "b"), ({"model": "gradattn_rope"}, "c")]
    palette = pyplot().get_cmap("tab10").colors
    assert figures.model_colors(pyplot(), runs) == {"resnet18": palette[0], "gradattn_rope": palette[1]}
