"""What the benchmark commands write: the targets met or missed, and the
markdown tables of their `.md` files.

Rows are the dicts that the commands' workers measure (`gradattn-benchmark`:
"models" and "pipelines" rows; `benchmark_models.py`: "results" rows), as
they stand in the `.json` files.
"""

import statistics

# What each `--jit-modes` value means on each backend, as the tables say it.
JIT_MEANINGS = {
    ("tensorflow", "on"): "tf.function + XLA",
    ("tensorflow", "off"): "tf.function, no XLA",
    ("jax", "on"): "jax.jit",
    ("jax", "off"): "run_eagerly (no jit)",
    ("torch", "on"): "torch.compile",
    ("torch", "off"): "eager",
}
# Keras' default `jit_compile="auto"` means jax.jit on JAX, against which
# PyTorch is compared. (On TensorFlow "auto" depends on the machine: no XLA
# without a GPU; the pipelines' demand asks Keras rather than guess.)
JAX_DEFAULT_JIT = "on"

# Targets of `gradattn-benchmark`.
MAX_STEP_TIME_RATIO = 1.10
RATIO_TARGET_BACKENDS = ("jax", "tensorflow")
MAX_TORCH_OVER_JAX = 2.0
MIN_PIPELINE_OVER_MODEL = 3.0
# Targets of `benchmark_models.py`: GradAttn / ResNet-18 step time per backend.
MODEL_STEP_TIME_TARGETS = {"jax": 1.10, "tensorflow": 1.10, "torch": 1.20}


# --- gradattn-benchmark ----------------------------------------------------------------


def evaluate_targets(reports):
    """Every check of `gradattn-benchmark`'s targets as a row: what, where,
    the measured value, the limit, met or not."""
    checks = []
    model_rows = [row for report in reports for row in report.get("models", [])]
    for row in model_rows:
        if (row["mode"] == "train" and row["backend"] in RATIO_TARGET_BACKENDS
                and row["model"].startswith("gradattn") and row["step_time_ratio_vs_resnet18"] is not None):
            checks.append({
                "target": f"GradAttn / ResNet-18 step time <= {MAX_STEP_TIME_RATIO:.2f}",
                "where": _where(row), "value": row["step_time_ratio_vs_resnet18"],
                "met": row["step_time_ratio_vs_resnet18"] <= MAX_STEP_TIME_RATIO,
            })  # fmt: skip
    jax_rows = {
        (row["model"], row["batch_size"], row["precision"]): row
        for row in model_rows
        if row["backend"] == "jax" and row["mode"] == "train" and row["jit"] == JAX_DEFAULT_JIT
    }
    for row in model_rows:
        if row["backend"] != "torch" or row["mode"] != "train":
            continue
        jax_row = jax_rows.get((row["model"], row["batch_size"], row["precision"]))
        if jax_row:
            ratio = jax_row["images_per_second"] / row["images_per_second"]
            checks.append({
                "target": f"torch within {MAX_TORCH_OVER_JAX:.0f}x of JAX (JAX images/s / torch images/s)",
                "where": _where(row) + f" vs JAX {jax_row['jit_meaning']}", "value": ratio,
                "met": ratio <= MAX_TORCH_OVER_JAX,
            })  # fmt: skip
    for report in reports:
        for row in report.get("pipelines", []):
            if "skipped" in row:
                continue
            checks.append({
                "target": f"pipeline >= {MIN_PIPELINE_OVER_MODEL:.0f}x the model's consumption",
                "where": f"{row['backend']}, {row['source']} ({row['dataset']}), {row['pipeline']}",
                "value": row["ratio_to_demand"], "met": row["ratio_to_demand"] >= MIN_PIPELINE_OVER_MODEL,
            })  # fmt: skip
    return checks


def _where(row):
    return f"{row['backend']} {row['jit_meaning']}, {row['model']}, batch {row['batch_size']}, {row['precision']}"


def format_throughput_markdown(reports, checks, command, *, rounds, pipeline_batch_size, pipeline_models):
    """The `.md` of `gradattn-benchmark`: the models' and pipelines' tables,
    the targets (`format_targets`) and one line per backend's machine."""
    lines = [
        f"Command: `{command}`",
        "",
        "Images/s through `model.fit` (training: forward, backward, optimizer update) and "
        "`model.predict` (inference) epochs of synthetic batches, median of "
        f"{rounds} interleaved rounds after one untimed warm-up call (compilation excluded); "
        "every model of a table row group is measured in the same rounds, so their ratios hold "
        "on a busy machine even where absolute figures do not. Spread: (max - min) / median of the "
        "per-round times.",
        "",
        "## Models",
        "",
        "| backend | compiled as | precision | batch | model | train images/s | train step (ms) "
        "| spread | infer images/s | train step / ResNet-18 | infer / ResNet-18 |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for report in reports:
        rows = report.get("models", [])
        train = {(_key(row)): row for row in rows if row["mode"] == "train"}
        infer = {(_key(row)): row for row in rows if row["mode"] == "infer"}
        for key, row in train.items():
            inference = infer.get(key, {})
            lines.append(
                f"| {row['backend']} | {row['jit_meaning']} | {row['precision']} | {row['batch_size']} | "
                f"{row['model']} | {row['images_per_second']:.0f} | {row['median_step_ms']:.1f} | "
                f"{100 * row['spread']:.0f}% | {_number(inference.get('images_per_second'), 0)} | "
                f"{_number(row['step_time_ratio_vs_resnet18'], 3)} | "
                f"{_number(inference.get('step_time_ratio_vs_resnet18'), 3)} |"
            )
    pipeline_rows = [row for report in reports for row in report.get("pipelines", [])]
    if pipeline_rows:
        lines += [
            "",
            "## Input pipelines",
            "",
            "Training pipeline (shuffle, the dataset's augmentation, resize, normalise; full batches of "
            f"{pipeline_batch_size}) measured alone, against the training images/s of "
            f"{', '.join(pipeline_models)} at the dataset's input size on the same backend "
            "(Keras' default compilation, `jit_compile=\"auto\"`); the fastest model is the demand. In training the two "
            "share the CPU, so a pipeline 3x faster than the demand costs the model about a "
            "quarter of the machine.",
            "",
            "| backend | source format | dataset | input | augmentation | pipeline | pipeline images/s "
            "| demand images/s (model) | pipeline / demand | target >= 3x |",
            "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | --- |",
        ]
        for row in pipeline_rows:
            if "skipped" in row:
                lines.append(f"| {row['backend']} | {row['source']} | {row['dataset']} | skipped: "
                             f"{row['skipped']} | | | | | | |")  # fmt: skip
                continue
            lines.append(
                f"| {row['backend']} | {row['source']} | {row['dataset']} | {row['input_shape']} | "
                f"{row['augmentation']} | {row['pipeline']} | {row['images_per_second']:.0f} | "
                f"{row['demand_images_per_second']:.0f} ({row['demand_model']}, "
                f"{JIT_MEANINGS[(row['backend'], row['demand_jit'])]}) | "
                f"{row['ratio_to_demand']:.1f} | {'met' if row['ratio_to_demand'] >= MIN_PIPELINE_OVER_MODEL else 'MISSED'} |"
            )
    lines += ["", "## Targets", "", format_targets(checks), ""]
    for report in reports:
        machine = report["machine"]
        versions = ", ".join(
            f"{name} {machine[name]}" for name in ("keras", "tensorflow", "jax", "torch") if name in machine
        )
        lines.append(
            f"- {machine['backend']}: {machine['processor']}, {machine['cpu_count']} cores, "
            f"{', '.join(machine.get('gpus') or []) or 'no GPU'}; {versions}; 1-minute load average "
            f"{machine.get('load_average_start', '?')} at the start, {machine.get('load_average_end', '?')} "
            "at the end."
        )
    return "\n".join(lines) + "\n"


def _key(row):
    return row["backend"], row["jit"], row["precision"], row["batch_size"], row["model"]


def _number(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def format_targets(checks):
    """A summary line per target (met / checked, worst case), then every missed check."""
    if not checks:
        return "No target could be checked (no matching measurements)."
    by_target = {}
    for check in checks:
        by_target.setdefault(check["target"], []).append(check)
    lines = []
    for target, group in by_target.items():
        met = sum(check["met"] for check in group)
        values = [check["value"] for check in group]
        verdict = "met everywhere" if met == len(group) else f"MISSED in {len(group) - met}"
        lines.append(
            f"- {target}: {verdict} ({met} of {len(group)} settings met); values "
            f"{min(values):.2f} to {max(values):.2f}, median {statistics.median(values):.2f}"
        )
        for check in group:
            if not check["met"]:
                lines.append(f"  - missed: {check['where']}: {check['value']:.2f}")
    return "\n".join(lines)


# --- benchmark_models.py ---------------------------------------------------------------


def format_models_table(reports, *, batch_size, precision, jit_compile, steps_per_round, rounds):
    """The table of `benchmark_models.py`: images/s, step time and the
    GradAttn / ResNet-18 ratio against `MODEL_STEP_TIME_TARGETS`, per backend."""
    lines = [
        f"Training throughput, batch {batch_size}, {precision}, jit_compile="
        f"{jit_compile}; `model.fit` epochs of {steps_per_round} steps, median "
        f"of {rounds} interleaved rounds after one untimed round.",
        "",
        "| backend | input | model | images/s | step (ms) | spread | step time / ResNet-18 | target |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for report in reports:
        backend = report["machine"]["backend"]
        for row in report["results"]:
            ratio = row["step_time_ratio_vs_resnet18"]
            target = ""
            if ratio is not None and row["model"].startswith("gradattn"):
                limit = MODEL_STEP_TIME_TARGETS[backend]
                target = f"<= {limit:.2f} {'met' if ratio <= limit else 'MISSED'}"
            lines.append(
                f"| {backend} | {row['input_shape']} | {row['model']} | "
                f"{row['images_per_second']:.0f} | {row['median_step_ms']:.1f} | "
                f"{100 * row['spread']:.0f}% | "
                f"{'' if ratio is None else f'{ratio:.3f}'} | {target} |"
            )
    machine = reports[0]["machine"] if reports else {}
    gpus = ", ".join(machine.get("gpus") or []) or "no GPU"
    lines += ["", f"Machine: {machine.get('processor')}, {machine.get('cpu_count')} cores, "
              f"{gpus}."]
    return "\n".join(lines) + "\n"
