"""Figures of gradient flow: training-time norms, the paper's four panels, depth attention.

Every function takes already-loaded data (`RunData`, `GradientFlowReport`) and
a PNG path, draws with matplotlib's Agg backend and writes atomically.
"""

import math

import numpy as np

from keras_gradattn.analysis.gradient_statistics import EXPLODING_THRESHOLD
from keras_gradattn.analysis.gradient_statistics import VANISHING_THRESHOLD
from keras_gradattn.utils import atomic_path
from keras_gradattn.utils.plotting import pyplot

# Beyond this many rows a heat map labels only every k-th layer.
MAX_LABELLED_ROWS = 40
_TINY = 1e-30  # keeps log10 finite for exact zeros


def _pyplot():
    return pyplot()


def _save(figure, path):
    plt = _pyplot()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def _label_rows(axis, names):
    step = max(1, math.ceil(len(names) / MAX_LABELLED_ROWS))
    positions = list(range(0, len(names), step))
    axis.set_yticks(positions)
    axis.set_yticklabels([names[i] for i in positions], fontsize=7 if len(names) > 12 else 9)


def _log10(values):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.maximum(values, _TINY))


def _heat_map(axis, series, title, colorbar_label="log10 gradient norm", figure=None):
    image = axis.imshow(
        _log10(series.values),
        aspect="auto",
        interpolation="nearest",
        cmap="viridis",
        extent=(-0.5, len(series.steps) - 0.5, len(series.names) - 0.5, -0.5),
    )
    _label_rows(axis, series.names)
    ticks = np.unique(np.linspace(0, len(series.steps) - 1, num=min(8, len(series.steps))).astype(int))
    axis.set_xticks(ticks)
    axis.set_xticklabels([str(series.steps[i]) for i in ticks], fontsize=8)
    axis.set_xlabel("training step")
    axis.set_title(title)
    if figure is not None:
        figure.colorbar(image, ax=axis, label=colorbar_label)


def training_heat_map(run, path):
    """Per-layer gradient norm over training (layers in model order)."""
    plt = _pyplot()
    height = min(3 + 0.18 * len(run.layers.names), 24)
    figure, axis = plt.subplots(figsize=(10, height))
    _heat_map(axis, run.layers, f"{run.name}: per-layer gradient norm", figure=figure)
    return _save(figure, path)


def _layer_axis(axis, names):
    """Layer names under a forward-order axis when few, else integer indices."""
    from matplotlib.ticker import MaxNLocator

    if len(names) <= 24:
        axis.set_xticks(range(len(names)))
        axis.set_xticklabels(names, rotation=90, fontsize=7)
    else:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("layer index (forward order)")


def _stage_axis(axis, run, title=None, xlabel=True):
    for name, values in zip(run.stages.names, run.stages.values):
        keep = ~np.isnan(values)
        axis.plot(run.stages.steps[keep], values[keep], label=name)
    if not run.global_norm.empty:
        values = run.global_norm.values[0]
        keep = ~np.isnan(values)
        axis.plot(run.global_norm.steps[keep], values[keep], "k--", label="global")
    axis.set_yscale("log")
    if xlabel:
        axis.set_xlabel("training step")
    axis.set_ylabel("gradient L2 norm")
    axis.set_title(title or run.name)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)


def stage_curves(run, path):
    """Per-stage and global gradient norm over training, learning rate below."""
    plt = _pyplot()
    with_lr = not run.learning_rate.empty
    figure, axes = plt.subplots(
        2 if with_lr else 1, 1, figsize=(9, 7 if with_lr else 4.5), sharex=True, squeeze=False,
        gridspec_kw={"height_ratios": [3, 1]} if with_lr else None,
    )
    _stage_axis(axes[0, 0], run, f"{run.name}: gradient norm per stage", xlabel=not with_lr)
    if with_lr:
        axis = axes[1, 0]
        axis.plot(run.learning_rate.steps, run.learning_rate.values[0], color="tab:gray")
        axis.set_yscale("log")
        axis.set_ylabel("learning rate")
        axis.set_xlabel("training step")
        axis.grid(True, which="both", alpha=0.3)
    return _save(figure, path)


def compare_stage_curves(runs, path):
    """The runs side by side (same y scale), each titled by its name."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4.5), sharey=True, squeeze=False)
    for axis, run in zip(axes[0], runs):
        _stage_axis(axis, run)
    figure.suptitle("Gradient norm per stage during training")
    return _save(figure, path)


def compare_heat_maps(runs, path):
    plt = _pyplot()
    rows = max(len(run.layers.names) for run in runs)
    figure, axes = plt.subplots(
        1, len(runs), figsize=(6.5 * len(runs), min(3 + 0.18 * rows, 24)), squeeze=False, constrained_layout=True
    )
    low = min(np.nanmin(_log10(run.layers.values)) for run in runs)
    high = max(np.nanmax(_log10(run.layers.values)) for run in runs)
    for axis, run in zip(axes[0], runs):
        _heat_map(axis, run.layers, run.name)
        axis.images[0].set_clim(low, high)
    figure.colorbar(axes[0, -1].images[0], ax=list(axes[0]), label="log10 gradient norm")
    return _save(figure, path)


def gradient_flow_panels(report, path, title=None):
    """The paper's four-panel figure, from a probe report.

    (a) per-layer mean output-gradient norm with error bars (std over
    batches), log scale; (b) layer x batch heat map; (c) histogram of log10
    norms with the vanishing/exploding thresholds; (d) layer-wise lines of
    mean norm, mean |g| and max |g|.
    """
    plt = _pyplot()
    norms = report.per_batch["l2_norm"]  # (batches, layers)
    names = report.layer_names
    positions = np.arange(len(names))
    mean, spread = norms.mean(axis=0), norms.std(axis=0)
    figure, axes = plt.subplots(2, 2, figsize=(14, 11), constrained_layout=True)
    figure.suptitle(title or f"{report.model_name}: gradient flow ({len(norms)} batches, training={report.training})")

    axis = axes[0, 0]
    lower = np.minimum(spread, mean * (1 - 1e-9))  # error bars must stay above 0 on a log axis
    axis.errorbar(positions, mean, yerr=[lower, spread], fmt="o", markersize=3, capsize=2)
    axis.set_yscale("log")
    for threshold, color in ((VANISHING_THRESHOLD, "tab:blue"), (EXPLODING_THRESHOLD, "tab:red")):
        if mean.min() / 10 < threshold < mean.max() * 10:
            axis.axhline(threshold, color=color, linestyle=":", linewidth=1)
    axis.set_title("(a) mean output-gradient norm per layer (± std over batches)")
    _layer_axis(axis, names)
    axis.set_ylabel("L2 norm")
    axis.grid(True, which="both", alpha=0.3)

    axis = axes[0, 1]
    image = axis.imshow(_log10(norms.T), aspect="auto", interpolation="nearest", cmap="viridis")
    _label_rows(axis, names)
    axis.set_xlabel("batch")
    axis.set_title("(b) log10 norm, layer x batch")
    figure.colorbar(image, ax=axis)

    axis = axes[1, 0]
    log_norms = _log10(norms.ravel())
    # Bins of a tenth of a decade over the data and both thresholds, so the
    # bars stay visible beside the threshold lines.
    low = min(math.floor(log_norms.min()), math.log10(VANISHING_THRESHOLD) - 1)
    high = max(math.ceil(log_norms.max()), math.log10(EXPLODING_THRESHOLD) + 1)
    axis.hist(log_norms, bins=np.arange(low, high + 0.1, 0.1), color="tab:gray")
    axis.axvline(math.log10(VANISHING_THRESHOLD), color="tab:blue", linestyle="--", label="vanishing 1e-6")
    axis.axvline(math.log10(EXPLODING_THRESHOLD), color="tab:red", linestyle="--", label="exploding 10")
    axis.set_xlabel("log10 L2 norm (all layers and batches)")
    axis.set_ylabel("count")
    axis.set_title(f"(c) distribution; health score {report.statistics['health_score']:.0%}")
    axis.legend(fontsize=8)

    axis = axes[1, 1]
    axis.plot(positions, mean, marker="o", markersize=3, label="L2 norm")
    axis.plot(positions, report.per_batch["mean_abs"].mean(axis=0), marker=".", label="mean |g|")
    axis.plot(positions, report.per_batch["max_abs"].mean(axis=0), marker=".", label="max |g|")
    axis.set_yscale("log")
    _layer_axis(axis, names)
    axis.set_title("(d) layer-wise gradient magnitude")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    return _save(figure, path)


def compare_probe_profiles(runs, path):
    """Mean output-gradient norm per layer of each run's probe, side by side."""
    plt = _pyplot()
    runs = [run for run in runs if run.probe is not None]
    figure, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4.5), sharey=True, squeeze=False)
    for axis, run in zip(axes[0], runs):
        report = run.probe
        axis.plot(np.arange(len(report.layer_names)), report.mean_norms, marker="o", markersize=3)
        axis.set_yscale("log")
        axis.set_xlabel("layer (forward order)")
        axis.set_title(f"{run.name} (health {report.statistics['health_score']:.0%})")
        axis.grid(True, which="both", alpha=0.3)
    axes[0, 0].set_ylabel("mean output-gradient L2 norm")
    figure.suptitle("Output-gradient norm per layer (probe)")
    return _save(figure, path)


def depth_attention_curves(run, path):
    """Attention each depth token receives, per encoder layer, over training."""
    plt = _pyplot()
    layers = sorted(run.depth_attention)
    figure, axes = plt.subplots(1, len(layers), figsize=(5 * len(layers), 4), sharey=True, squeeze=False)
    for axis, layer in zip(axes[0], layers):
        series = run.depth_attention[layer]
        for name, values in zip(series.names, series.values):
            axis.plot(series.steps, values, marker="o", markersize=3, label=name)
        axis.set_title(f"encoder layer {layer}")
        axis.set_xlabel("training step")
        axis.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel("attention received (mean over batch, queries)")
    axes[0, -1].legend(fontsize=8)
    figure.suptitle(f"{run.name}: depth attention over training")
    return _save(figure, path)


def connection_parameter_curves(run, path):
    """The learned skip-connection values (ReZero alpha, LayerScale gamma,
    Highway gates, DWA and AttnRes weights, hyper-connection weights) over
    training, one panel per stage."""
    plt = _pyplot()
    stages = list(run.connection)
    figure, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 4), squeeze=False)
    for axis, stage in zip(axes[0], stages):
        series = run.connection[stage]
        for name, values in zip(series.names, series.values):
            axis.plot(series.steps, values, marker="o", markersize=3, label=name)
        axis.set_title(stage)
        axis.set_xlabel("training step")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=6)
    axes[0, 0].set_ylabel("learned connection value")
    figure.suptitle(f"{run.name}: learned skip connections over training")
    return _save(figure, path)
