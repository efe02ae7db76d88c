"""Tables from fabricated run folders: summaries, paired comparisons, cross-backend
spread, the CSV and markdown writers, against hand-computed values."""

import math
import os

import pytest

from keras_gradattn.experiments import aggregate
from keras_gradattn.experiments import experiment
from keras_gradattn.experiments import results_markdown
from reproduce_testing import fake_run

pytestmark = pytest.mark.backend_independent


def make_grid(root, accuracies, dataset="digits", backend="jax", **options):
    """accuracies: {model: {seed: top1 fraction}}."""
    for model, by_seed in accuracies.items():
        for seed, top1 in by_seed.items():
            fake_run(os.path.join(root, dataset, model, f"seed{seed}-{backend}"), dataset=dataset,
                     model=model, seed=seed, backend=backend, top1=top1, **options)


ACCURACIES = {
    "resnet18": {42: 0.90, 43: 0.80, 44: 0.85},
    "gradattn_learned_pe": {42: 0.88, 43: 0.82, 44: 0.80},
}


def test_summary_mean_std_and_paper_column(tmp_path):
    make_grid(tmp_path, ACCURACIES, dataset="fashion_mnist")
    fake_run(tmp_path / "x" / "nan", dataset="fashion_mnist", model="gradattn_learned_pe", seed=45,
             status="diverged")
    rows = aggregate.summarize(aggregate.load_run_records(tmp_path))
    assert [row["model"] for row in rows] == ["resnet18", "gradattn_learned_pe"]
    resnet, gradattn = rows
    assert resnet["n"] == 3 and resnet["seeds"] == "42 43 44"
    assert resnet["top1_pct_mean"] == pytest.approx(85.0)
    assert resnet["top1_pct_std"] == pytest.approx(5.0)
    assert resnet["paper_top1_pct"] == 64.11
    assert gradattn["paper_top1_pct"] == 75.18
    # The diverged run is counted, never averaged.
    assert gradattn["n"] == 3 and gradattn["n_diverged"] == 1
    assert gradattn["top1_pct_mean"] == pytest.approx(83.333333)
    assert gradattn["health_score_mean"] == 1.0 and gradattn["average_decay_rate_mean"] == pytest.approx(1.1)
    assert gradattn["max_epochs"] == 5 and gradattn["train_size"] == 1258


def test_a_dataset_the_paper_does_not_report_has_no_paper_figure(tmp_path):
    make_grid(tmp_path, ACCURACIES)
    rows = aggregate.summarize(aggregate.load_run_records(tmp_path))
    assert all(math.isnan(row["paper_top1_pct"]) for row in rows)
    assert "| - |" in results_markdown.accuracy_table(rows)


def test_paired_comparison_by_hand(tmp_path):
    make_grid(tmp_path, {**ACCURACIES, "gradattn_rope": {42: 0.91, 43: 0.81}}, dataset="fashion_mnist")
    rows = aggregate.paired_comparisons(aggregate.load_run_records(tmp_path))
    learned, rope = rows
    assert learned["model"] == "gradattn_learned_pe" and learned["baseline"] == "resnet18"
    # Differences -2, +2, -5 points.
    assert learned["differences_pp"] == "-2.00 +2.00 -5.00"
    assert learned["mean_difference_pp"] == pytest.approx(-5 / 3)
    assert learned["std_difference_pp"] == pytest.approx(math.sqrt(((1 / 3) ** 2 + (11 / 3) ** 2 + (10 / 3) ** 2) / 2))
    assert (learned["wins"], learned["losses"], learned["ties"]) == (1, 2, 0)
    # Observed |-5|; sums of +-2 +-2 +-5: 9, 5, 5, 1 and their mirrors: 6 of 8 reach |5|.
    assert learned["p_value_sign_flip"] == pytest.approx(0.75)
    assert learned["smallest_possible_p"] == 0.25
    assert learned["paper_difference_pp"] == pytest.approx(75.18 - 64.11)
    # Only the seeds both models finished are paired.
    assert rope["n"] == 2 and rope["seeds"] == "42 43"
    assert rope["mean_difference_pp"] == pytest.approx(1.0)


def test_runs_with_different_budgets_are_never_paired_or_averaged(tmp_path):
    make_grid(tmp_path / "a", ACCURACIES, epochs=5)
    make_grid(tmp_path / "b", {"resnet18": {42: 0.5}}, epochs=10)
    records = aggregate.load_run_records(tmp_path)
    summary = aggregate.summarize(records)
    assert sorted((row["model"], row["max_epochs"], row["n"]) for row in summary) == [
        ("gradattn_learned_pe", 5, 3), ("resnet18", 5, 3), ("resnet18", 10, 1)]
    paired = aggregate.paired_comparisons(records)
    assert len(paired) == 1 and paired[0]["n"] == 3


def test_cross_backend_spread(tmp_path):
    for backend, top1 in (("tensorflow", 0.90), ("jax", 0.93), ("torch", 0.91)):
        make_grid(tmp_path, {"resnet18": {42: top1}}, backend=backend, time_per_epoch=len(backend))
    make_grid(tmp_path, {"gradattn_rope": {42: 0.9}}, backend="jax")  # one backend: no row
    rows, backends = aggregate.cross_backend(aggregate.load_run_records(tmp_path))
    assert backends == ["tensorflow", "jax", "torch"]
    (row,) = rows
    assert row["top1_spread_pp"] == pytest.approx(3.0)
    assert row["top1_pct_jax"] == pytest.approx(93.0) and row["time_per_epoch_s_torch"] == 5
    table = results_markdown.cross_backend_table(rows)
    assert "top-1 % TensorFlow | top-1 % JAX | top-1 % PyTorch" in table
    assert "| 3.00 |" in table


def test_csv_round_trip(tmp_path):
    make_grid(tmp_path / "runs", ACCURACIES)
    rows = aggregate.summarize(aggregate.load_run_records(tmp_path / "runs"))
    path = tmp_path / "summary.csv"
    aggregate.write_csv(path, rows, aggregate.SUMMARY_FIELDS)
    back = aggregate.read_csv(path)
    assert [row["model"] for row in back] == ["resnet18", "gradattn_learned_pe"]
    assert back[0]["top1_pct_mean"] == pytest.approx(85.0)
    assert back[0]["paper_top1_pct"] is None  # NaN is written as an empty cell
    assert back[0]["max_train_samples"] is None
    assert not [name for name in os.listdir(tmp_path) if ".tmp" in name]


def paired_row(**fields):
    row = {"model": "gradattn_learned_pe", "baseline": "resnet18", "n": 3, "wins": 0, "losses": 3,
           "mean_difference_pp": -3.0, "ci95_low_pp": -5.0, "ci95_high_pp": -1.0,
           "p_value_sign_flip": 0.25, "smallest_possible_p": 0.25, "paper_difference_pp": 11.07}
    row.update(fields)
    return row


def test_paired_reading_says_when_the_paper_is_contradicted():
    text = results_markdown.paired_reading(paired_row())
    assert "behind `resnet18` on every one of the 3 seeds" in text
    assert "+11.07 pp" in text and "NOT reproduced" in text and "sign is reversed" in text
    text = results_markdown.paired_reading(paired_row(wins=2, losses=1, mean_difference_pp=2.0, ci95_low_pp=-3.0,
                                            ci95_high_pp=15.0))
    assert "interval includes zero" in text and "consistent with it" in text
    text = results_markdown.paired_reading(paired_row(paper_difference_pp=float("nan")))
    assert "reports no figure" in text


def test_paired_reading_of_one_seed_claims_no_interval_and_no_test():
    text = results_markdown.paired_reading(paired_row(n=1, seeds="42", losses=1, mean_difference_pp=-0.9,
                                                      ci95_low_pp=float("nan"), ci95_high_pp=float("nan"),
                                                      p_value_sign_flip=1.0, smallest_possible_p=1.0))
    assert "behind `resnet18` on the one seed run (42): -0.90 pp" in text
    assert "neither an interval nor a test" in text and "+11.07 pp (one seed)" in text
    assert "interval includes zero" not in text and "1 seeds" not in text


def test_experiment_tables_and_readme(tmp_path):
    results = tmp_path / "results" / "exp"
    experiment.record_invocation(
        str(results), "exp", {"datasets": ["fashion_mnist"]}, {"epochs": 5}, "python scripts/reproduce.py x",
        title="A test experiment",
    )  # fmt: skip
    make_grid(results / "runs", ACCURACIES, dataset="fashion_mnist", max_train_samples=1000, train_size=1000)
    experiment.write_tables(str(results))
    for name in ("runs.csv", "summary.csv", "paired.csv", "README.md"):
        assert os.path.exists(results / name)
    assert not os.path.exists(results / "cross_backend.csv")
    readme = (results / "README.md").read_text()
    assert readme.startswith("# A test experiment")
    assert "a seeded subset of 1,000 training images (`--max-train-samples 1000`)" in readme
    assert "| fashion_mnist | `resnet18` | JAX | 42 43 44 (3) | 85.00 ± 5.00 | 64.11 |" in readme
    assert "python scripts/reproduce.py x" in readme
    # docs/results.md from the committed files alone.
    document = results_markdown.results_document(str(tmp_path / "results"))
    assert "## A test experiment" in document
    assert "## Where this confirms or contradicts the paper" in document
    assert "NOT reproduced" in document and "+11.07 pp" in document


def test_the_budget_of_an_experiment_cannot_change(tmp_path):
    experiment.record_invocation(str(tmp_path), "exp", {"seeds": [42]}, {"epochs": 5}, "first")
    meta = experiment.record_invocation(str(tmp_path), "exp", {"seeds": [43]}, {"epochs": 5}, "second")
    assert meta["grid"]["seeds"] == [42, 43]
    assert [entry["command"] for entry in meta["invocations"]] == ["first", "second"]
    with pytest.raises(experiment.ExperimentError, match="use another --experiment"):
        experiment.record_invocation(str(tmp_path), "exp", {}, {"epochs": 10}, "third")


def test_a_difference_that_rounds_to_zero_is_never_negative_zero():
    # Equal accuracies give mean differences like -1e-15.
    assert results_markdown.fmt(-1e-15, signed=True) == "+0.00"
    assert results_markdown.fmt(-0.004) == "0.00"
    assert results_markdown.fmt(-0.006, signed=True) == "-0.01"
    assert results_markdown.fmt_pm(-1e-15, 0.64, signed=True) == "+0.00 ± 0.64"


def test_a_run_file_that_is_not_json_is_named(tmp_path):
    folder = tmp_path / "runs" / "digits" / "resnet18" / "seed42-jax"
    fake_run(str(folder), model="resnet18", seed=42, top1=0.9)
    (folder / "metrics.json").write_text("{truncated")
    with pytest.raises(ValueError, match=r"metrics\.json is not valid JSON"):
        aggregate.read_run_record(str(folder))
