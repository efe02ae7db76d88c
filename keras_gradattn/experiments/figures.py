"""An experiment's figures over seeds: validation accuracy per epoch and the
probe's gradient norm per layer, one line per model.

Both are drawn from the collected runs (`history.csv`, `metrics.json` and
`gradient_probe.json` under `results/<experiment>/runs/`), so
`--aggregate-only` redraws them from the committed files alone. Runs are
grouped as the tables group them: one panel per dataset, backend and budget,
since runs that differ in any of them are never averaged together; a model
keeps its colour in every panel of both figures.
"""

import csv
import math
import os

from keras_gradattn.experiments import aggregate
from keras_gradattn.experiments.seed_statistics import mean_std

VALIDATION_FIGURE = "validation_accuracy.png"
GRADIENT_FIGURE = "gradient_flow.png"
# More lines than this in one panel (a design-space grid has 15) cannot be
# told apart; such experiments get no figure (the design space draws its own).
MAX_MODELS_PER_PANEL = 8


def read_history(folder):
    """`{"epoch": [...], "val_accuracy": [...]}` (percent) from a run's history.csv, or None without one."""
    path = os.path.join(folder, "history.csv")
    if not os.path.exists(path):
        return None
    with open(path, newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("val_accuracy") not in (None, "")]
    if not rows:
        return None
    return {
        "epoch": [int(row["epoch"]) for row in rows],
        "val_accuracy": [100.0 * float(row["val_accuracy"]) for row in rows],
    }


def read_layer_norms(folder):
    """The probe's mean L2 norm per layer (input to output), or None without a probe file."""
    path = os.path.join(folder, "gradient_probe.json")
    if not os.path.exists(path):
        return None
    # Imported here: the probe module imports Keras, which the tables and
    # documents never need.
    from keras_gradattn.analysis.probe import GradientFlowReport

    return [float(norm) for norm in GradientFlowReport.load(path).mean_norms]


def finished_runs(runs_root):
    """`[(record, folder)]` of every run below `runs_root` that the tables average, in table order."""
    runs = []
    for folder in aggregate.run_folders(runs_root):
        record = aggregate.read_run_record(folder)
        if aggregate.finished_records([record]):
            runs.append((record, folder))
    order = aggregate.model_order(record["model"] for record, _ in runs)
    runs.sort(
        key=lambda run: (
            run[0]["dataset"],
            aggregate.BACKEND_ORDER.index(run[0]["backend"])
            if run[0]["backend"] in aggregate.BACKEND_ORDER
            else len(aggregate.BACKEND_ORDER),
            tuple(str(value) for value in aggregate.budget_key(run[0])),
            order.index(run[0]["model"]),
            run[0]["seed"],
        )
    )
    return runs


def panels(runs):
    """`{(dataset, backend, budget): {model: [(record, folder), ...]}}`, in the order of `runs`."""
    grouped = {}
    for record, folder in runs:
        key = (record["dataset"], record["backend"], aggregate.budget_key(record))
        grouped.setdefault(key, {}).setdefault(record["model"], []).append((record, folder))
    return grouped


def _read_panels(runs, read, keep=lambda values: True):
    """`{panel: {model: [read(record, folder) of each seed]}}`, seeds for which
    `read` finds nothing left out, then models without seeds or whose values
    `keep` rejects, then empty panels."""
    grouped = {}
    for key, models in panels(runs).items():
        values_by_model = {}
        for model, model_runs in models.items():
            values = [value for record, folder in model_runs if (value := read(record, folder))]
            if values and keep(values):
                values_by_model[model] = values
        if values_by_model:
            grouped[key] = values_by_model
    return grouped


def epoch_band(histories):
    """Per epoch: `(epochs, mean, std, seeds that reached it)` of validation accuracy.

    Early stopping ends seeds at different epochs; each epoch averages the
    seeds that reached it, and the count says how many did.
    """
    last = max(history["epoch"][-1] for history in histories)
    epochs, means, stds, counts = [], [], [], []
    for epoch in range(1, last + 1):
        values = [
            history["val_accuracy"][history["epoch"].index(epoch)] for history in histories if epoch in history["epoch"]
        ]
        if not values:
            continue
        mean, std, _ = mean_std(values)
        epochs.append(epoch)
        means.append(mean)
        stds.append(0.0 if std is None or math.isnan(std) else std)
        counts.append(len(values))
    return epochs, means, stds, counts


def model_colors(plt, runs):
    """One colour per model, the same in every panel and both figures."""
    palette = plt.get_cmap("tab10").colors
    models = aggregate.model_order(record["model"] for record, _ in runs)
    return {model: palette[index % len(palette)] for index, model in enumerate(models)}


def _panel_title(key):
    dataset, backend, budget = key
    budget = dict(zip(aggregate.BUDGET_FIELDS, budget))
    train = f", {budget['train_size']:,} training images" if budget.get("train_size") else ""
    epochs = budget["max_epochs"]
    return f"{dataset}, {aggregate.backend_name(backend)}{train}, at most {epochs} epoch{'s' if epochs != 1 else ''}"


def _grid(plt, count, width=7.0, height=4.2):
    columns = min(count, 2)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    flat = [axis for row in axes for axis in row]
    for unused in flat[count:]:
        unused.set_visible(False)
    return figure, flat


def _save(plt, figure, path):
    from keras_gradattn.utils.io import atomic_path

    try:
        figure.tight_layout()
        with atomic_path(path) as temporary:
            # No "Software" entry: the committed PNGs then change only when
            # the figure does, not with every matplotlib release.
            figure.savefig(temporary, format="png", dpi=80, metadata={"Software": None})
    finally:
        plt.close(figure)


def _crowded(grouped):
    return any(len(models) > MAX_MODELS_PER_PANEL for models in grouped.values())


def plot_validation_accuracy(runs, path, title=None):
    """Validation top-1 per epoch of every model: mean ± std over seeds (band),
    each seed faint, the best epoch it restored starred. Returns False (no
    file) when no run has a history or a panel is crowded."""
    from matplotlib.ticker import MaxNLocator

    from keras_gradattn.utils.plotting import pyplot

    grouped = _read_panels(
        runs, lambda record, folder: (record, history) if (history := read_history(folder)) else None
    )
    if not grouped or _crowded(grouped):
        return False
    plt = pyplot()
    colors = model_colors(plt, runs)
    figure, axes = _grid(plt, len(grouped))
    for axis, (key, models) in zip(axes, grouped.items()):
        lowest = []
        for model, seeds in models.items():
            color = colors[model]
            for record, history in seeds:
                axis.plot(history["epoch"], history["val_accuracy"], color=color, alpha=0.25, linewidth=0.8)
                best = record.get("best_epoch")
                if best in history["epoch"]:
                    value = history["val_accuracy"][history["epoch"].index(best)]
                    axis.plot(best, value, "*", color=color, markersize=7)
            histories = [history for _, history in seeds]
            epochs, means, stds, _ = epoch_band(histories)
            axis.plot(epochs, means, color=color, linewidth=1.8, label=f"{model} (n={len(histories)})")
            lower = [mean - std for mean, std in zip(means, stds)]
            upper = [mean + std for mean, std in zip(means, stds)]
            axis.fill_between(epochs, lower, upper, color=color, alpha=0.2)
            # Scale to the bulk of training: the first two epochs start far
            # lower and would flatten everything after them.
            lowest.append(min(means[min(2, len(means) - 1) :]))
        axis.set_ylim(max(0.0, min(lowest) - 3.0), None)
        axis.set_title(_panel_title(key), fontsize=10)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel("validation top-1 % (mean ± std over seeds)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    figure.suptitle(title or "Validation accuracy per epoch (stars: each seed's best epoch, the one restored)")
    _save(plt, figure, path)
    return True


def plot_gradient_flow(runs, path, title=None):
    """The probe's mean gradient norm per layer after training (log scale), every
    model: mean over seeds, band from the lowest to the highest seed.

    Models probe different numbers of layers (ResNet-18 21, GradAttn 44 with
    its encoder), so the x axis is relative depth, input 0 to output 1.
    Returns False (no file) when no run has a probe or a panel is crowded.
    """
    from keras_gradattn.utils.plotting import pyplot

    grouped = _read_panels(
        runs,
        lambda record, folder: read_layer_norms(folder),
        # Seeds of one model probe the same layers; a mismatch is not averaged.
        keep=lambda profiles: len({len(profile) for profile in profiles}) == 1,
    )
    if not grouped or _crowded(grouped):
        return False
    plt = pyplot()
    colors = model_colors(plt, runs)
    figure, axes = _grid(plt, len(grouped))
    for axis, (key, models) in zip(axes, grouped.items()):
        for model, profiles in models.items():
            count = len(profiles[0])
            by_layer = list(zip(*profiles))
            depth = [index / max(count - 1, 1) for index in range(count)]
            axis.plot(
                depth,
                [sum(values) / len(values) for values in by_layer],
                color=colors[model],
                marker="o",
                markersize=2.5,
                label=f"{model} (n={len(profiles)}, {count} layers)",
            )
            lowest, highest = [min(values) for values in by_layer], [max(values) for values in by_layer]
            axis.fill_between(depth, lowest, highest, color=colors[model], alpha=0.2)
        axis.set_yscale("log")
        axis.set_title(_panel_title(key), fontsize=10)
        axis.set_xlabel("relative depth of the probed layer (input 0, output 1)")
        axis.set_ylabel("gradient norm at the layer's output")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    figure.suptitle(title or "Gradient flow after training (validation batches; band: lowest to highest seed)")
    _save(plt, figure, path)
    return True


def write_figures(results_dir, runs_folder="runs"):
    """Both figures of an experiment's collected runs; returns the names written.

    A figure with nothing to draw is removed rather than left stale.
    """
    runs = finished_runs(os.path.join(results_dir, runs_folder))
    written = []
    for name, plot in ((VALIDATION_FIGURE, plot_validation_accuracy), (GRADIENT_FIGURE, plot_gradient_flow)):
        path = os.path.join(results_dir, name)
        if plot(runs, path):
            written.append(name)
        elif os.path.exists(path):
            os.remove(path)
    return written
