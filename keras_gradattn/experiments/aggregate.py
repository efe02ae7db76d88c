"""Tables from a grid's collected runs: per-cell summaries, paired comparisons
against a baseline across seeds, gradient-flow statistics, cross-backend spread.

Input: run folders holding `config.json` and `metrics.json` as `gradattn-train`
writes them (under `results/<experiment>/runs/`). Output: rows (lists of dicts)
that `write_csv` and `experiment_markdown` turn into files. Accuracies are in
percent, differences in percentage points.
"""

import csv
import io
import json
import math
import os

from keras_gradattn.experiments import paper
from keras_gradattn.experiments.seed_statistics import mean_std
from keras_gradattn.experiments.seed_statistics import paired_comparison
from keras_gradattn.utils import atomic_write_text

BASELINE = "resnet18"
BACKEND_ORDER = ("tensorflow", "jax", "torch")
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}

RUN_FIELDS = (
    "dataset", "model", "seed", "backend", "status", "max_epochs", "max_train_samples",
    "batch_size", "train_size", "validation_size", "test_size", "model_args",
    "top1_pct", "top3_pct", "f1_macro", "ece", "nll", "training_time_s", "time_per_epoch_s",
    "epochs_run", "best_epoch", "stopped_early", "trainable_parameters", "health_score",
    "average_decay_rate", "bottleneck_layers", "vanishing_layers", "exploding_layers",
    "probe_layers", "git_commit",
)  # fmt: skip
# Per-run values summarised as mean and std over a cell's seeds.
SUMMARISED = (
    "top1_pct", "f1_macro", "ece", "nll", "training_time_s", "time_per_epoch_s", "epochs_run",
    "best_epoch", "health_score", "average_decay_rate", "bottleneck_layers", "vanishing_layers",
    "exploding_layers",
)  # fmt: skip
# The flags that make two runs comparable; runs that differ in any of them
# are never averaged or paired together.
BUDGET_FIELDS = ("max_epochs", "max_train_samples", "batch_size", "train_size")
SUMMARY_FIELDS = (
    ("dataset", "model", "backend") + BUDGET_FIELDS
    + ("validation_size", "test_size", "model_args", "n", "n_diverged", "seeds")
    + tuple(f"{name}_{stat}" for name in SUMMARISED for stat in ("mean", "std"))
    + ("trainable_parameters", "paper_top1_pct")
)  # fmt: skip
PAIRED_FIELDS = (
    "dataset", "backend", *BUDGET_FIELDS, "model", "baseline", "n", "seeds", "differences_pp",
    "mean_difference_pp", "std_difference_pp", "ci95_low_pp", "ci95_high_pp", "wins", "losses",
    "ties", "p_value_sign_flip", "smallest_possible_p", "model_top1_pct_mean",
    "baseline_top1_pct_mean", "paper_difference_pp",
)  # fmt: skip


def _read_json(path):
    with open(path) as file:
        try:
            return json.load(file)
        except json.JSONDecodeError as error:
            # Name the file: the decoder's own message says only where.
            raise ValueError(f"{path} is not valid JSON ({error})") from None


def _percent(value):
    return None if value is None else 100.0 * float(value)


def load_run_records(root):
    """One record per run folder below `root` (any depth) that holds a config.json.

    Finished runs carry their test metrics; diverged or unfinished runs carry
    only their identity and status (counted, never averaged).
    """
    return [read_run_record(folder) for folder in run_folders(root)]


def run_folders(root):
    """Every folder below `root` (any depth) that holds a run's config.json, sorted."""
    return [folder for folder, _, files in sorted(os.walk(root)) if "config.json" in files]


def read_run_record(folder):
    """The record (a `RUN_FIELDS` dict) of the run whose config.json is in `folder`."""
    config = _read_json(os.path.join(folder, "config.json"))
    status_path = os.path.join(folder, "status.json")
    status = _read_json(status_path).get("status") if os.path.exists(status_path) else "unknown"
    metrics_path = os.path.join(folder, "metrics.json")
    metrics = _read_json(metrics_path) if status == "finished" and os.path.exists(metrics_path) else {}
    return _record(config, status, metrics)


def _record(config, status, metrics):
    train = config["train_config"]
    sizes = config.get("dataset", {}).get("sizes", {})
    flow = metrics.get("gradient_flow") or {}
    return {
        "dataset": train["dataset"],
        "model": train["model"],
        "seed": int(train["seed"]),
        "backend": train.get("backend") or config.get("backend"),
        "status": status,
        "max_epochs": int(train["epochs"]),
        "max_train_samples": train.get("max_train_samples"),
        "batch_size": int(train["batch_size"]),
        "train_size": sizes.get("train"),
        "validation_size": sizes.get("validation"),
        "test_size": sizes.get("test"),
        "model_args": json.dumps(train.get("model_args") or {}, sort_keys=True),
        "top1_pct": _percent(metrics.get("top1_accuracy")),
        "top3_pct": _percent(metrics.get("top3_accuracy")),
        "f1_macro": metrics.get("f1_macro"),
        "ece": metrics.get("ece"),
        "nll": metrics.get("nll"),
        "training_time_s": metrics.get("training_time_s"),
        "time_per_epoch_s": metrics.get("time_per_epoch_s"),
        "epochs_run": metrics.get("epochs_run"),
        "best_epoch": metrics.get("best_epoch"),
        "stopped_early": metrics.get("stopped_early"),
        "trainable_parameters": metrics.get("trainable_parameters")
        or config.get("model", {}).get("trainable_parameters"),
        "health_score": flow.get("health_score"),
        "average_decay_rate": flow.get("average_decay_rate"),
        "bottleneck_layers": flow.get("bottleneck_layers"),
        "vanishing_layers": flow.get("vanishing_layers"),
        "exploding_layers": flow.get("exploding_layers"),
        "probe_layers": flow.get("num_layers"),
        "git_commit": (config.get("git") or {}).get("commit"),
    }


def backend_name(backend):
    """How the documents name a backend: "TensorFlow", "JAX", "PyTorch"."""
    return BACKEND_NAMES.get(backend, str(backend))


def budget_key(record):
    """The record's `BUDGET_FIELDS` values: runs with equal keys are comparable."""
    return tuple(record[field] for field in BUDGET_FIELDS)


def model_order(models):
    """The baseline first, then the other ResNets, then the GradAttn variants."""
    fixed = ("resnet18", "se_resnet18", "cbam_resnet18", "plain_resnet18", "resnet34",
             "gradattn_nope", "gradattn_learned_pe", "gradattn_rope")  # fmt: skip
    return sorted(set(models), key=lambda name: (fixed.index(name) if name in fixed else len(fixed), name))


def finished_records(records):
    """The records of runs that finished with a test accuracy (what the tables average)."""
    return [record for record in records if record["status"] == "finished" and record["top1_pct"] is not None]


def summarize(records):
    """Mean and std over seeds per (dataset, model, backend, budget)."""
    cells = {}
    for record in records:
        key = (record["dataset"], record["model"], record["backend"], budget_key(record))
        cells.setdefault(key, []).append(record)
    rows = []
    for key, group in cells.items():
        finished = sorted(finished_records(group), key=lambda record: record["seed"])
        dataset, model, backend, budget = key
        row = {"dataset": dataset, "model": model, "backend": backend}
        row.update(zip(BUDGET_FIELDS, budget))
        row["model_args"] = "; ".join(sorted({record["model_args"] for record in group}))
        # The same for every seed of a cell: the whole split, never reduced.
        row["validation_size"] = group[0]["validation_size"]
        row["test_size"] = group[0]["test_size"]
        row["n"] = len(finished)
        row["n_diverged"] = sum(record["status"] == "diverged" for record in group)
        row["seeds"] = " ".join(str(record["seed"]) for record in finished)
        for name in SUMMARISED:
            values = [record[name] for record in finished if record[name] is not None]
            mean, std, _ = mean_std(values)
            row[f"{name}_mean"], row[f"{name}_std"] = mean, std
        parameters = {record["trainable_parameters"] for record in group if record["trainable_parameters"]}
        row["trainable_parameters"] = parameters.pop() if len(parameters) == 1 else None
        row["paper_top1_pct"] = paper.paper_top1(dataset, model)
        rows.append(row)
    return _sorted_rows(rows)


def _backend_rank(backend):
    return BACKEND_ORDER.index(backend) if backend in BACKEND_ORDER else len(BACKEND_ORDER)


def _sorted_rows(rows):
    ranks = {name: index for index, name in enumerate(model_order(row["model"] for row in rows))}
    return sorted(rows, key=lambda row: (
        row["dataset"], str(tuple(row[field] for field in BUDGET_FIELDS)),
        _backend_rank(row.get("backend")), ranks[row["model"]], row.get("seed", 0),
    ))  # fmt: skip


def paired_comparisons(records, baseline=BASELINE):
    """Every other model against `baseline`, on the seeds both finished,
    within each (dataset, backend, budget)."""
    groups = {}
    for record in finished_records(records):
        key = (record["dataset"], record["backend"], budget_key(record))
        groups.setdefault(key, {}).setdefault(record["model"], {})[record["seed"]] = record["top1_pct"]
    rows = []
    for (dataset, backend, budget), by_model in groups.items():
        if baseline not in by_model:
            continue
        for model in model_order(by_model):
            if model == baseline:
                continue
            seeds = sorted(set(by_model[model]) & set(by_model[baseline]))
            if not seeds:
                continue
            candidate = [by_model[model][seed] for seed in seeds]
            reference = [by_model[baseline][seed] for seed in seeds]
            result = paired_comparison(candidate, reference)
            row = {"dataset": dataset, "backend": backend}
            row.update(zip(BUDGET_FIELDS, budget))
            row.update(
                model=model,
                baseline=baseline,
                n=result["n"],
                seeds=" ".join(map(str, seeds)),
                differences_pp=" ".join(f"{value:+.2f}" for value in result["differences"]),
                mean_difference_pp=result["mean"],
                std_difference_pp=result["std"],
                ci95_low_pp=result["ci95_low"],
                ci95_high_pp=result["ci95_high"],
                wins=result["wins"],
                losses=result["losses"],
                ties=result["ties"],
                p_value_sign_flip=result["p_value"],
                smallest_possible_p=result["smallest_p_value"],
                model_top1_pct_mean=mean_std(candidate)[0],
                baseline_top1_pct_mean=mean_std(reference)[0],
                paper_difference_pp=paper.paper_difference(dataset, model, baseline),
            )
            rows.append(row)
    return _sorted_rows(rows)


def cross_backend(records):
    """Per (dataset, model, seed, budget) run under two or more backends: the
    test top-1 and time per epoch under each, and the top-1 spread (max - min)."""
    groups = {}
    for record in finished_records(records):
        key = (record["dataset"], record["model"], record["seed"], budget_key(record))
        groups.setdefault(key, {})[record["backend"]] = record
    backends = [name for name in BACKEND_ORDER if any(name in group for group in groups.values())]
    backends += sorted({name for group in groups.values() for name in group} - set(backends))
    rows = []
    for (dataset, model, seed, budget), by_backend in groups.items():
        if len(by_backend) < 2:
            continue
        row = {"dataset": dataset, "model": model, "seed": seed}
        row.update(zip(BUDGET_FIELDS, budget))
        accuracies = []
        for backend in backends:
            record = by_backend.get(backend)
            row[f"top1_pct_{backend}"] = record["top1_pct"] if record else None
            row[f"epochs_run_{backend}"] = record["epochs_run"] if record else None
            row[f"time_per_epoch_s_{backend}"] = record["time_per_epoch_s"] if record else None
            if record:
                accuracies.append(record["top1_pct"])
        row["n_backends"] = len(accuracies)
        row["top1_spread_pp"] = max(accuracies) - min(accuracies)
        rows.append(row)
    return _sorted_rows(rows), backends


def cross_backend_fields(backends):
    return (
        ("dataset", "model", "seed") + BUDGET_FIELDS
        + tuple(f"top1_pct_{backend}" for backend in backends)
        + tuple(f"epochs_run_{backend}" for backend in backends)
        + tuple(f"time_per_epoch_s_{backend}" for backend in backends)
        + ("n_backends", "top1_spread_pp")
    )  # fmt: skip


# --- files --------------------------------------------------------------------


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(round(value, 6))
    return value


def csv_text(rows, fields):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({field: _csv_value(row.get(field)) for field in fields})
    return buffer.getvalue()


def write_csv(path, rows, fields):
    atomic_write_text(path, csv_text(rows, fields))


def read_csv(path):
    """Rows of a CSV written by `write_csv`, numbers parsed back (empty -> None)."""
    with open(path, newline="") as file:
        return [{key: _parse(value) for key, value in row.items()} for row in csv.DictReader(file)]


def _parse(text):
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    if text in ("True", "False"):
        return text == "True"
    return text
