"""An experiment's figures over seeds: validation accuracy per epoch and the
probe's gradient norm per layer, one line per model.

Both are drawn from the collected runs (`history.csv` and `gradient_probe.json`
under `results/<experiment>/runs/`), so `--aggregate-only` redraws them from
the committed files alone. Runs are grouped as the tables group them: one
panel per dataset, backend and budget, since runs that differ in any of them
are never averaged together.
"""

import csv
import json
import math
import os

from keras_gradattn.experiments import aggregate
from keras_gradattn.experiments.seed_statistics import mean_std

VALIDATION_FIGURE = "validation_accuracy.png"
GRADIENT_FIGURE = "gradient_flow.png"
# More lines than this in one panel (a design-space grid) cannot be told
# apart; such experiments get no figure (the design space draws its own).
MAX_MODELS_PER_PANEL = 8


def read_history(folder):
    """`{"epoch": [...], "val_accuracy": [...]}` from a run's history.csv, or None without one."""
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
    """`(layer_names, mean L2 norm per layer over the probe's batches)`, or None without a probe."""
    path = os.path.join(folder, "gradient_probe.json")
    if not os.path.exists(path):
        return None
    with open(path) as file:
        probe = json.load(file)
    per_batch = probe.get("per_batch", {}).get("l2_norm") or []
    if not per_batch:
        return None
    names = [layer["name"] for layer in probe["layers"]]
    means = [sum(batch[index] for batch in per_batch) / len(per_batch) for index in range(len(names))]
    return names, means


def finished_runs(runs_root):
    """`[(record, folder)]` of every finished run below `runs_root`, in table order."""
    runs = []
    for folder in aggregate.run_folders(runs_root):
        record = aggregate.read_run_record(folder)
        if record["status"] == "finished":
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
    """`{(dataset, backend, budget): {model: [folder, ...]}}`, insertion-ordered as `runs`."""
    grouped = {}
    for record, folder in runs:
        key = (record["dataset"], record["backend"], aggregate.budget_key(record))
        grouped.setdefault(key, {}).setdefault(record["model"], []).append(folder)
    return grouped


def epoch_band(histories):
    """Per epoch: `(epochs, mean, std, seeds still running)` of validation accuracy.

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


def _panel_title(key):
    from keras_gradattn.experiments.results_markdown import backend_name

    dataset, backend, budget = key
    budget = dict(zip(aggregate.BUDGET_FIELDS, budget))
    train = f", {budget['train_size']:,} training images" if budget.get("train_size") else ""
    return f"{dataset}, {backend_name(backend)}{train}, at most {budget['max_epochs']} epochs"


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

    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=80)
    plt.close(figure)


def plot_validation_accuracy(runs, path, title=None):
    """Validation top-1 per epoch of every model: mean ± std over seeds (band),
    each seed faint, its restored best epoch marked. Returns False (no file)
    when no run has a history or a panel is crowded."""
    from matplotlib.ticker import MaxNLocator

    from keras_gradattn.utils.plotting import pyplot

    grouped = {
        key: {model: histories for model, folders in models.items() if (histories := _histories(folders))}
        for key, models in panels(runs).items()
    }
    grouped = {key: models for key, models in grouped.items() if models}
    if not grouped or _crowded(grouped):
        return False
    plt = pyplot()
    figure, axes = _grid(plt, len(grouped))
    colors = plt.get_cmap("tab10").colors
    for axis, (key, models) in zip(axes, grouped.items()):
        lowest = []
        for index, (model, histories) in enumerate(models.items()):
            color = colors[index % len(colors)]
            for history in histories:
                axis.plot(history["epoch"], history["val_accuracy"], color=color, alpha=0.25, linewidth=0.8)
                best = max(range(len(history["epoch"])), key=lambda i: history["val_accuracy"][i])
                axis.plot(history["epoch"][best], history["val_accuracy"][best], "*", color=color, markersize=7)
            epochs, means, stds, _ = epoch_band(histories)
            axis.plot(epochs, means, color=color, linewidth=1.8, label=f"{model} (n={len(histories)})")
            axis.fill_between(
                epochs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], color=color, alpha=0.2
            )
            # Scale to the bulk of training, not the first epoch's low start.
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


def _crowded(grouped):
    return any(len(models) > MAX_MODELS_PER_PANEL for models in grouped.values())


def _histories(folders):
    return [history for folder in folders if (history := read_history(folder))]


def plot_gradient_flow(runs, path, title=None):
    """The probe's mean gradient norm per layer (input to output, log scale) of
    every model after training: mean over seeds, band from the lowest to the
    highest seed. Returns False (no file) when no run has a probe or a panel
    is crowded."""
    from keras_gradattn.utils.plotting import pyplot

    grouped = {}
    for key, models in panels(runs).items():
        profiles = {model: [norms for folder in folders if (norms := read_layer_norms(folder))] for model, folders in models.items()}
        profiles = {model: norms for model, norms in profiles.items() if norms}
        if profiles:
            grouped[key] = profiles
    if not grouped or _crowded(grouped):
        return False
    plt = pyplot()
    figure, axes = _grid(plt, len(grouped))
    colors = plt.get_cmap("tab10").colors
    for axis, (key, models) in zip(axes, grouped.items()):
        for index, (model, profiles) in enumerate(models.items()):
            color = colors[index % len(colors)]
            count = min(len(means) for _, means in profiles)
            by_layer = [[means[layer] for _, means in profiles] for layer in range(count)]
            layers = list(range(1, count + 1))
            axis.plot(
                layers,
                [sum(values) / len(values) for values in by_layer],
                color=color,
                marker="o",
                markersize=2.5,
                label=f"{model} (n={len(profiles)}, {count} layers)",
            )
            axis.fill_between(layers, [min(v) for v in by_layer], [max(v) for v in by_layer], color=color, alpha=0.2)
        axis.set_yscale("log")
        axis.set_title(_panel_title(key), fontsize=10)
        axis.set_xlabel("probed layer (input to output)")
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
