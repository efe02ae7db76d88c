"""The skip-connection comparison of docs/design_space.md, from an experiment's runs.

One row per model of a grid (dataset x backend x budget): its connection and
head, test top-1 over seeds, paired differences against ResNet-18 and against
GradAttn, epochs to best, time per epoch relative to ResNet-18, and the
gradient-flow probe's statistics with the mean gradient norm of each stage.
`comparison_markdown` writes the two tables, `plot_comparison` the figure;
`scripts/design_space_report.py` puts both into docs/design_space.md.
"""

import json
import os

import numpy as np

from keras_gradattn.experiments.aggregate import BUDGET_FIELDS
from keras_gradattn.experiments.aggregate import read_run_record
from keras_gradattn.experiments.aggregate import run_folders
from keras_gradattn.experiments.aggregate import backend_name
from keras_gradattn.experiments.results_markdown import fmt
from keras_gradattn.experiments.results_markdown import fmt_pm
from keras_gradattn.experiments.seed_statistics import mean_std
from keras_gradattn.experiments.seed_statistics import paired_comparison
from keras_gradattn.utils.table_cells import is_missing

# Paired against both: the residual network and GradAttn as the paper has it.
BASELINES = ("resnet18", "gradattn_learned_pe")
BASELINE_LABELS = {"resnet18": "ResNet-18", "gradattn_learned_pe": "GradAttn"}
# The backbone's parts, input to output, as the probe names its layers.
STAGES = ("stem", "stage1", "stage2", "stage3", "stage4")
CONNECTION_ORDER = ("identity", "none", "rezero", "layerscale", "highway", "dwa", "attnres", "hyper")
HEAD_ORDER = ("pooled", "gradattn")
HEAD_LABELS = {"pooled": "pooled Dense", "gradattn": "GradAttn encoder"}


def model_design(model):
    """`(connection, head)` of a registered model: the backbone's connection
    ("identity", "none", "rezero", ...) and "pooled" (ResNet's average pool
    and Dense) or "gradattn" (the depth-token encoder)."""
    from keras_gradattn.layers.resnet_blocks import resolve_connection
    from keras_gradattn.models.classifiers import GradAttnClassifier
    from keras_gradattn.models.registry import get_model_entry

    entry = get_model_entry(model)
    connection = resolve_connection(entry.defaults.get("use_shortcuts"), entry.defaults.get("connection"))
    return connection, "gradattn" if entry.classifier is GradAttnClassifier else "pooled"


def stage_gradient_norms(probe):
    """`{stage: norm}` from a gradient_probe.json dict: the mean over probe
    batches of each layer's output-gradient L2 norm, averaged over the
    layers of the stage (layers outside the backbone are left out)."""
    per_layer = np.mean(np.asarray(probe["per_batch"]["l2_norm"], dtype="float64"), axis=0)
    if np.shape(per_layer) != (len(probe["layers"]),):
        raise ValueError(f"{len(probe['layers'])} layers but norms of shape {np.shape(per_layer)} per batch")
    norms = {}
    for stage in STAGES:
        values = [value for layer, value in zip(probe["layers"], per_layer) if layer["name"].split("/")[0] == stage]
        if values:
            norms[stage] = float(np.mean(values))
    return norms


def load_runs(runs_root):
    """The finished runs below `runs_root`: `read_run_record`'s fields plus
    `folder` and `stage_norms` (from the run's gradient_probe.json, empty
    without one). A file that cannot be read raises ValueError naming it."""
    runs = []
    for folder in run_folders(runs_root):
        record = read_run_record(folder)
        if record["status"] != "finished" or record["top1_pct"] is None:
            continue
        record["folder"] = folder
        record["stage_norms"] = {}
        probe_path = os.path.join(folder, "gradient_probe.json")
        if os.path.exists(probe_path):
            record["stage_norms"] = _read_stage_norms(probe_path)
        runs.append(record)
    return runs


def _read_stage_norms(probe_path):
    with open(probe_path) as file:
        try:
            return stage_gradient_norms(json.load(file))
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise ValueError(
                f"{probe_path} is not a gradient-flow probe file (gradattn-train's gradient_probe.json): "
                f"{type(error).__name__}: {error}"
            ) from None


def _mean(values):
    values = [value for value in values if not is_missing(value)]
    return mean_std(values)[0] if values else None


def comparison_rows(runs, baselines=BASELINES):
    """One row per (dataset, backend, budget, model) of `runs` (`load_runs`)."""
    groups = {}
    for run in runs:
        key = (run["dataset"], run["backend"], tuple(run[field] for field in BUDGET_FIELDS))
        by_seed = groups.setdefault(key, {}).setdefault(run["model"], {})
        if run["seed"] in by_seed:
            # Two runs of one configuration would weigh one seed twice in
            # the paired tests; which one counts is the user's choice.
            raise ValueError(
                f"two finished runs of {run['model']} with seed {run['seed']} on {run['dataset']} "
                f"({run['backend']}) and the same budget: {by_seed[run['seed']].get('folder')} and "
                f"{run.get('folder')}; keep one"
            )
        by_seed[run["seed"]] = run
    rows = []
    for (dataset, backend, budget), by_model in groups.items():
        for model, by_seed in by_model.items():
            connection, head = model_design(model)
            seeds = sorted(by_seed)
            top1 = [by_seed[seed]["top1_pct"] for seed in seeds]
            top1_mean, top1_std, _ = mean_std(top1)
            time_per_epoch = _mean(by_seed[seed]["time_per_epoch_s"] for seed in seeds)
            # Each seed's time against ResNet-18's on the same seed, then
            # averaged: a ratio of means would compare different seed sets
            # when a model lacks a seed ResNet-18 has, or the reverse.
            relative_time = _mean(
                _ratio(by_seed[seed]["time_per_epoch_s"], by_model["resnet18"][seed]["time_per_epoch_s"])
                for seed in seeds if seed in by_model.get("resnet18", {})
            )  # fmt: skip
            row = {
                "dataset": dataset, "backend": backend, **dict(zip(BUDGET_FIELDS, budget)),
                "model": model, "connection": connection, "head": head, "n": len(seeds),
                "seeds": " ".join(map(str, seeds)),
                "top1_pct_mean": top1_mean, "top1_pct_std": top1_std,
                "top1_pct_by_seed": top1,
                "best_epoch_mean": _mean(by_seed[seed]["best_epoch"] for seed in seeds),
                "time_per_epoch_s_mean": time_per_epoch,
                "time_per_epoch_relative": relative_time,
                "health_score_mean": _mean(by_seed[seed]["health_score"] for seed in seeds),
                "average_decay_rate_mean": _mean(by_seed[seed]["average_decay_rate"] for seed in seeds),
            }  # fmt: skip
            for stage in STAGES:
                row[f"{stage}_gradient_norm"] = _mean(by_seed[seed]["stage_norms"].get(stage) for seed in seeds)
            for baseline in baselines:
                row.update(_against(by_seed, by_model.get(baseline), baseline, model))
            rows.append(row)
    return sorted(rows, key=_row_order)


def _ratio(value, reference):
    if is_missing(value) or is_missing(reference) or not reference:
        return None
    return value / reference


def _against(by_seed, baseline_by_seed, baseline, model):
    fields = {f"vs_{baseline}_{name}": None for name in ("mean_pp", "p_value", "ahead", "behind", "n")}
    if baseline_by_seed is None or model == baseline:
        return fields
    seeds = sorted(set(by_seed) & set(baseline_by_seed))
    if not seeds:
        return fields
    result = paired_comparison(
        [by_seed[seed]["top1_pct"] for seed in seeds], [baseline_by_seed[seed]["top1_pct"] for seed in seeds]
    )
    fields.update({
        f"vs_{baseline}_mean_pp": result["mean"], f"vs_{baseline}_p_value": result["p_value"],
        f"vs_{baseline}_ahead": result["wins"], f"vs_{baseline}_behind": result["losses"],
        f"vs_{baseline}_n": result["n"],
    })  # fmt: skip
    return fields


def _row_order(row):
    connection = row["connection"]
    return (
        row["dataset"], row["backend"], str(tuple(row[field] for field in BUDGET_FIELDS)),
        HEAD_ORDER.index(row["head"]),
        CONNECTION_ORDER.index(connection) if connection in CONNECTION_ORDER else len(CONNECTION_ORDER),
    )  # fmt: skip


def _paired_cell(row, baseline):
    mean = row[f"vs_{baseline}_mean_pp"]
    if is_missing(mean):
        return "-"
    ahead, behind, n = (row[f"vs_{baseline}_{name}"] for name in ("ahead", "behind", "n"))
    return f"{fmt(mean, signed=True)} ({ahead}/{behind} of {n}, p {fmt(row[f'vs_{baseline}_p_value'], 3)})"


def _scientific(value):
    return "-" if is_missing(value) else f"{value:.2e}"


def comparison_markdown(rows, baselines=BASELINES):
    """The results table and the gradient-flow table, in Markdown."""
    labels = [BASELINE_LABELS.get(baseline, f"`{baseline}`") for baseline in baselines]
    lines = [
        "| connection | head | model | seeds (n) | test top-1 % | "
        + " | ".join(f"vs {label}: pp (wins/losses of n, p)" for label in labels)
        + " | best epoch | time / epoch (x ResNet-18) |",
        "| --- | --- | --- | --- | ---: | " + " | ".join("---:" for _ in labels) + " | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['connection']} | {HEAD_LABELS[row['head']]} | `{row['model']}` | {row['seeds']} ({row['n']}) | "
            f"{fmt_pm(row['top1_pct_mean'], row['top1_pct_std'])} | "
            + " | ".join(_paired_cell(row, baseline) for baseline in baselines)
            + f" | {fmt(row['best_epoch_mean'], 1)} | {fmt(row['time_per_epoch_relative'])} |"
        )
    lines += [
        "",
        "| connection | head | model | health score | average decay rate | "
        + " | ".join(f"{stage} norm" for stage in STAGES) + " |",
        "| --- | --- | --- | ---: | ---: | " + " | ".join("---:" for _ in STAGES) + " |",
    ]
    for row in rows:
        lines.append(
            f"| {row['connection']} | {HEAD_LABELS[row['head']]} | `{row['model']}` | "
            f"{fmt(row['health_score_mean'], 3)} | "
            f"{fmt(row['average_decay_rate_mean'], 2)} | "
            + " | ".join(_scientific(row[f"{stage}_gradient_norm"]) for stage in STAGES) + " |"
        )
    return "\n".join(lines) + "\n"


def grid_caption(rows):
    """One sentence: which grid the rows come from."""
    datasets = sorted({row["dataset"] for row in rows})
    backends = sorted({backend_name(row["backend"]) for row in rows})
    seeds = sorted({seed for row in rows for seed in row["seeds"].split()})
    return (
        f"{len(rows)} models on {', '.join(datasets)} ({', '.join(backends)}), seeds {', '.join(seeds)}; "
        f"{sum(row['n'] for row in rows)} finished runs."
    )


def plot_comparison(rows, path, title=None):
    """Writes a PNG: test top-1 of every model (one dot a seed, the mean as
    a bar), and, one panel per head, each connection's mean gradient norm
    per backbone stage (log scale)."""
    from keras_gradattn.utils.io import atomic_path
    from keras_gradattn.utils.plotting import pyplot

    plt = pyplot()
    colors = dict(zip(CONNECTION_ORDER, plt.get_cmap("tab10").colors))
    figure, axes = plt.subplots(
        1, 3, figsize=(17, 0.3 * len(rows) + 2.8), gridspec_kw={"width_ratios": [1.2, 1, 1]}
    )
    accuracy_axes, flow_axes = axes[0], dict(zip(HEAD_ORDER, axes[1:]))
    for position, row in enumerate(rows):
        color = colors.get(row["connection"], "black")
        accuracy_axes.barh(position, row["top1_pct_mean"], color=color, alpha=0.35, height=0.7)
        accuracy_axes.plot(row["top1_pct_by_seed"], [position] * row["n"], "o", color=color, markersize=4)
        norms = [row[f"{stage}_gradient_norm"] for stage in STAGES]
        if not any(is_missing(value) for value in norms):
            flow_axes[row["head"]].plot(STAGES, norms, color=color, marker="o", markersize=3, label=row["connection"])
    every_seed = [value for row in rows for value in row["top1_pct_by_seed"]]
    accuracy_axes.set_xlim(min(every_seed) - 1.0, min(100.0, max(every_seed) + 0.5))
    accuracy_axes.set_yticks(range(len(rows)), [row["model"] for row in rows])
    accuracy_axes.invert_yaxis()
    accuracy_axes.set_xlabel("test top-1 % (dots: seeds; bar: mean)")
    for head, head_axes in flow_axes.items():
        head_axes.set_yscale("log")
        head_axes.set_title(f"{HEAD_LABELS[head]} head", fontsize=10)
        head_axes.set_xlabel("backbone stage (input to output)")
        head_axes.set_ylabel("mean gradient norm of the stage's conv outputs")
        if head_axes.lines:
            head_axes.legend(fontsize=8)
    every_norm = [value for row in rows for stage in STAGES if not is_missing(value := row[f"{stage}_gradient_norm"])]
    if every_norm:  # one scale for both heads, so that their panels compare
        for head_axes in flow_axes.values():
            head_axes.set_ylim(min(every_norm) / 1.5, max(every_norm) * 1.5)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)
