"""Markdown report of the gradient-flow statistics of one or more runs."""

import numpy as np

from keras_gradattn.utils.table_cells import is_missing


def _number(value, digits=3):
    if is_missing(value):
        return "-"
    return f"{value:.{digits}g}"


def _names(names, limit=8):
    if not names:
        return "none"
    shown = ", ".join(f"`{name}`" for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _last(series, row=0):
    values = series.values[row]
    finite = values[~np.isnan(values)]
    return float(finite[-1]) if finite.size else None


def markdown_report(runs, figures):
    """`figures[run.name]` maps figure titles to file names (relative links)."""
    lines = ["# Gradient-flow report", ""]
    lines += [
        "Training-time norms are those `GradientNormLogger` logged: L2 norms of the gradients the optimizer",
        "applied (after loss-scale unscaling, before clipping), per layer, stage and globally. The probe",
        "figures are output-gradient norms measured after training by `probe_gradient_flow` (the paper's",
        "section-7 statistics, computed without changing any model state).",
        "",
        "## Comparison",
        "",
        "| run | log steps | last global norm | probe batches | training mode | probed layers | health score "
        "| vanishing | exploding | average decay rate | bottlenecks |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        cells = [run.name]
        if run.has_training_logs:
            cells += [str(len(run.layers.steps)), _number(_last(run.global_norm)) if not run.global_norm.empty else "-"]
        else:
            cells += ["-", "-"]
        if run.probe is not None:
            stats = run.probe.statistics
            cells += [
                str(len(run.probe.losses)),
                str(run.probe.training),
                str(stats["num_layers"]),
                f"{stats['health_score']:.1%}",
                str(len(stats["vanishing_layers"])),
                str(len(stats["exploding_layers"])),
                _number(stats["average_decay_rate"]),
                str(len(stats["bottleneck_layers"])),
            ]
        else:
            cells += ["-"] * 8
        lines.append("| " + " | ".join(cells) + " |")
    for run in runs:
        lines += ["", f"## {run.name}", "", f"Directory: `{run.directory}`", ""]
        for title, file_name in figures.get(run.name, {}).items():
            lines += [f"![{title}]({file_name})", ""]
        if run.has_training_logs:
            lines += _training_section(run)
        if run.probe is not None:
            lines += _probe_section(run.probe)
    return "\n".join(lines) + "\n"


def _training_section(run):
    steps = run.layers.steps
    lines = [
        "### Training logs",
        "",
        f"{len(run.layers.names)} layers in {len(run.stages.names)} stages, {len(steps)} log steps "
        f"(steps {steps[0]} to {steps[-1]}).",
        "",
        "| stage | first | last | mean | max |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, values in zip(run.stages.names, run.stages.values):
        finite = values[~np.isnan(values)]
        lines.append(
            f"| `{name}` | {_number(finite[0])} | {_number(finite[-1])} | {_number(finite.mean())} | {_number(finite.max())} |"
        )
    lines += ["", "| layer | mean norm over training | last norm |", "| --- | --- | --- |"]
    for row, name in enumerate(run.layers.names):
        values = run.layers.values[row]
        finite = values[~np.isnan(values)]
        lines.append(f"| `{name}` | {_number(finite.mean())} | {_number(finite[-1])} |")
    return lines + [""]


def _probe_section(report):
    stats = report.statistics
    norms = report.per_batch["l2_norm"]
    flags = {}
    for key, flag in (("vanishing_layers", "vanishing"), ("exploding_layers", "exploding"), ("bottleneck_layers", "bottleneck")):
        for name in stats[key]:
            flags.setdefault(name, []).append(flag)
    lines = [
        "### Probe (output gradients after training)",
        "",
        f"- batches: {len(report.losses)}, training mode: {report.training}, loss: {report.loss}, "
        f"mean batch loss {_number(float(np.mean(report.losses)), 4)}",
        f"- health score: {stats['health_score']:.1%} of {stats['num_layers']} layers with mean norm in "
        f"({stats['vanishing_threshold']:g}, {stats['exploding_threshold']:g})",
        f"- vanishing layers: {_names(stats['vanishing_layers'])}",
        f"- exploding layers: {_names(stats['exploding_layers'])}",
        f"- average decay rate (norm[i] / norm[i+1], forward order): {_number(stats['average_decay_rate'])}",
        f"- bottleneck layers (norm < mean - 2 std = {_number(stats['bottleneck_threshold'])}): "
        f"{_names(stats['bottleneck_layers'])}",
        f"- targeted layers without gradient: {_names(report.missing_layers)}",
        "",
        "| # | layer | kind | mean L2 norm | std over batches | mean \\|g\\| | max \\|g\\| | flags |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for index, layer in enumerate(report.layers):
        lines.append(
            f"| {index} | `{layer['name']}` | {layer['kind']} | {_number(norms[:, index].mean())} "
            f"| {_number(norms[:, index].std())} | {_number(report.per_batch['mean_abs'][:, index].mean())} "
            f"| {_number(report.per_batch['max_abs'][:, index].mean())} | {', '.join(flags.get(layer['name'], []))} |"
        )
    return lines + [""]
