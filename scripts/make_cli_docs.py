#!/usr/bin/env python
"""Writes docs/cli.md, the command-line reference, from the commands' own --help.

    python scripts/make_cli_docs.py            # rewrite docs/cli.md
    python scripts/make_cli_docs.py --check    # exit 1 if docs/cli.md is stale

Each command in COMMANDS is run as a script with `--help` (in this process,
through `runpy`, so its `--help` is exactly what the script prints) at a
fixed terminal width of 100 columns, and its output goes verbatim into a
code block under a short introduction. tests/docs/test_cli_docs.py fails
when docs/cli.md and the current --help disagree.
"""

import argparse
import contextlib
import io
import os
import runpy
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(REPOSITORY, "docs", "cli.md")
COLUMNS = 100

# (script, introduction). Every Python script under scripts/ is listed; tests/docs/test_cli_docs.py checks that none is left out.
COMMANDS = (
    (
        "scripts/train.py",
        (
            "Trains one model with the paper's protocol and writes a run directory. Installed as the "
            "`gradattn-train` console command (`pyproject.toml`), with the same flags; also "
            "`python -m keras_gradattn.cli.train`. The protocol, the run directory, `--resume` and "
            "`--distribute` are explained in [training.md](training.md). Exit status: 0 done, 2 bad input "
            "(one line on stderr, nothing written), 3 the loss diverged, 4 another process of a multi-process "
            "run was lost (resume with --resume), 130 interrupted."
        ),
    ),
    (
        "scripts/analyze.py",
        (
            "Figures and a markdown report (`gradient_report.md`) from one or more run directories: the "
            "`GradientNormLogger` event files below each `RUN_DIR` and its `gradient_probe.json`. With "
            "several runs it also draws them side by side. Exit status 2 on unreadable runs. Installed as "
            "`gradattn-analyze`. See "
            "[tensorboard.md](tensorboard.md) and [gradient_flow.md](gradient_flow.md)."
        ),
    ),
    (
        "scripts/benchmark_models.py",
        (
            "Training throughput (images/s through `model.fit`, compilation excluded) of the paper's models "
            "per backend and input shape, and each GradAttn variant's step time over ResNet-18's. Each backend "
            "runs in its own subprocess."
        ),
    ),
    (
        "scripts/benchmark_epoch.py",
        (
            "A whole `gradattn-train` epoch on FashionMNIST-shaped IDX files (input pipeline, augmentation, the "
            "protocol's callbacks, gradient logging at the default frequency) against the bare training step, "
            "per backend and model, with PASS/MISS at 0.9x. Each backend runs in its own subprocess. See "
            "[benchmarks.md](benchmarks.md#a-whole-epoch-against-the-bare-step)."
        ),
    ),
    (
        "scripts/gpu_check.py",
        (
            "The one-shot GPU check, usually run as `bash scripts/gpu_check.sh` (same flags): plain PyTorch "
            "against each backend's training step (ResNet-18 and GradAttn, 28x28x1 and 32x32x3, float32 and "
            "bfloat16, our data on the device) and a whole FashionMNIST epoch per backend on the device data "
            "path, with PASS/MISS beside the GPU targets, in `results/benchmarks/gpu_check_<device>.md`. See "
            "[benchmarks.md](benchmarks.md#on-a-gpu)."
        ),
    ),
    (
        "scripts/count_flops.py",
        (
            "FLOPs per image of the paper's models (forward, and forward + backward) from XLA's cost model, "
            "and each model's ratio to ResNet-18: the floor a measured step-time ratio can reach. Always "
            "counts in a JAX process, whatever `KERAS_BACKEND` says; compiles and runs nothing. See "
            "[benchmarks.md](benchmarks.md#flops-what-the-ratio-targets-can-reach)."
        ),
    ),
    (
        "scripts/reproduce.py",
        (
            "A grid of `gradattn-train` runs (datasets x models x seeds x backends), one subprocess each, "
            "that skips finished runs and resumes unfinished ones; then the tables: mean +- std per cell, "
            "paired differences against ResNet-18 with an exact sign-flip test, cross-backend spread, the "
            "paper's figures beside ours. Installed as `gradattn-reproduce`. See [reproduce.md](reproduce.md) "
            "and [results.md](results.md). Exit status: 0 done, 1 some runs failed, 2 bad input, 130 interrupted."
        ),
    ),
    (
        "scripts/benchmark.py",
        (
            "Training and inference images/s per backend x model x batch size x precision x compilation "
            "mode, the input pipelines' own throughput per source format, and the throughput targets checked "
            "in one run. Installed as `gradattn-benchmark`. Figures measured so far: "
            "[benchmarks.md](benchmarks.md)."
        ),
    ),
    (
        "scripts/benchmark_gradient_logger.py",
        (
            "Step-time overhead of `GradientNormLogger` on the backend chosen by `KERAS_BACKEND`, as JSON "
            "([gradient_flow.md](gradient_flow.md) quotes the measured figures)."
        ),
    ),
    (
        "scripts/probe_medmnist_pipeline.py",
        (
            "The MedMNIST `tf.data` training pipeline timed alone, on a stand-in BloodMNIST file, with and "
            "without augmentation and through the benchmark's own timing function; no flags. Its output is "
            "`results/benchmarks/probe_medmnist_pipeline.txt` ([benchmarks.md](benchmarks.md))."
        ),
    ),
    (
        "scripts/benchmark_plain_torch.py",
        (
            "Training images/s of our models on each backend against the same models in plain PyTorch "
            "(`plain_torch/`), interleaved rounds, each backend in its own subprocess; prints the ratio to "
            "plain PyTorch (median, min-max) with PASS or MISS beside each target and writes "
            "`results/benchmarks/plain_torch_cpu.md` and `.json`. Figures: [benchmarks.md](benchmarks.md)."
        ),
    ),
    (
        "scripts/benchmark_fast_paths.py",
        (
            "Training images/s with the backend's fast layer kernels (the fused BatchNorm on PyTorch) against "
            "Keras' portable ones (`GRADATTN_PORTABLE_LAYERS=1`), round by round in one process; prints the "
            "ratio (median, min-max) with PASS or MISS and writes `results/benchmarks/fast_paths_<backend>_cpu.md` "
            "and `.json`. Figures: [benchmarks.md](benchmarks.md)."
        ),
    ),
    (
        "scripts/profile_torch_step.py",
        (
            "torch.profiler tables of one Keras-on-PyTorch `fit` epoch of ResNet-18 on a GPU or the CPU; no "
            "flags. Its outputs are `results/benchmarks/torch_profile_h100.txt` and `torch_profile_cpu.txt` "
            "([benchmarks.md](benchmarks.md))."
        ),
    ),
    (
        "scripts/profile_jax_step.py",
        (
            "Where JAX's CPU training step of ResNet-18 spends its time beside plain PyTorch's: the step, its "
            "convolutions (each compiled and timed alone) against PyTorch's oneDNN kernels, and how XLA "
            "compiled them. Its output is `results/benchmarks/jax_profile_cpu.txt` "
            "([benchmarks.md](benchmarks.md))."
        ),
    ),
    (
        "scripts/profile_tensorflow_step.py",
        (
            "Where TensorFlow's CPU training step (graph executor, oneDNN) spends its time beside plain "
            "PyTorch's step of the same model: the step, the profiler's kernel time per op type, and both "
            "sides' op time as convolutions, matrix products and the rest. Its outputs are "
            "`results/benchmarks/tensorflow_profile_cpu*.txt` ([benchmarks.md](benchmarks.md))."
        ),
    ),
    (
        "scripts/compare_runs.py",
        (
            "How far apart two run directories are: the largest relative differences of their losses "
            "epoch by epoch, and the 99th percentile and maximum of the differences of their best weights, "
            "as one JSON line. The multi-process parity figures of "
            "[training.md](training.md#several-processes-and-machines) come from it."
        ),
    ),
    (
        "scripts/design_space_report.py",
        (
            "The design-space tables and figure of [design_space.md](design_space.md#results) from an "
            "experiment's committed runs: test top-1, paired differences against ResNet-18 and against "
            "GradAttn, epochs to best, relative time per epoch, and gradient norms per stage; `--check` only "
            "reports whether the page is current."
        ),
    ),
    (
        "scripts/execute_notebooks.py",
        (
            "Runs the notebooks top to bottom (nbclient) with their committed parameters, or with `-p` "
            "overrides injected after the cell tagged `parameters` as papermill does, and writes the outputs "
            "back. This is how the committed notebook outputs were produced."
        ),
    ),
    (
        "scripts/make_architecture_diagram.py",
        "Draws `docs/images/architecture.png` ([architecture.md](architecture.md)) with matplotlib.",
    ),
    (
        "scripts/make_api_docs.py",
        "Writes [api.md](api.md) from the package's public names; `--check` only reports staleness.",
    ),
    (
        "scripts/make_cli_docs.py",
        "Writes this page from the commands' `--help`; `--check` only reports staleness.",
    ),
)


def help_text(script):
    """What `python SCRIPT --help` prints at COLUMNS columns."""
    path = os.path.join(REPOSITORY, script)
    output = io.StringIO()
    saved_argv, saved_columns = sys.argv, os.environ.get("COLUMNS")
    sys.argv = [path, "--help"]
    os.environ["COLUMNS"] = str(COLUMNS)
    try:
        with contextlib.redirect_stdout(output):
            try:
                runpy.run_path(path, run_name="__main__")
            except SystemExit as exit:
                if exit.code not in (0, None):
                    raise RuntimeError(
                        f"{script} --help exited with {exit.code}"
                    ) from None
            else:
                raise RuntimeError(f"{script} --help did not exit")
    finally:
        sys.argv = saved_argv
        if saved_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved_columns
    return output.getvalue().rstrip() + "\n"


def python_version():
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def generate():
    """The text of docs/cli.md."""
    sys.path.insert(0, REPOSITORY)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    lines = [
        "# Command-line reference",
        "",
        (
            f"<!-- Generated by scripts/make_cli_docs.py with Python {python_version()} at {COLUMNS} "
            "columns; do not edit by hand. tests/docs/test_cli_docs.py fails when it and --help disagree. -->"
        ),
        "",
        (
            "Every command is a thin script under `scripts/` around a module of `keras_gradattn.cli` (or a "
            "small tool of its own); run it from a checkout as `PYTHONPATH=. python scripts/NAME.py` "
            "(all but `train.py` also find the checkout by themselves), or as its console command "
            "(`gradattn-train`, `gradattn-analyze`, `gradattn-reproduce`, `gradattn-benchmark`) once the "
            "package is installed. Below, each "
            f"command's `--help`, verbatim, as printed at a terminal width of {COLUMNS} columns "
            f"(`COLUMNS={COLUMNS}`). `scripts/setup.sh` (creates `.venv/`) and `scripts/test.sh` (runs the "
            "tests per backend; `BACKENDS=jax bash scripts/test.sh -k layers`) are shell scripts without "
            "flags."
        ),
        "",
    ]
    lines += [
        "| command | what it does |",
        "| --- | --- |",
    ]
    for script, intro in COMMANDS:
        name = os.path.basename(script)
        anchor = name.replace(".", "")
        lines.append(
            f"| [`{script}`](#{anchor}) | {intro.split('. ')[0].rstrip('.')}. |"
        )
    lines.append("")
    for script, intro in COMMANDS:
        name = os.path.basename(script)
        lines += [
            f"## {name}",
            "",
            intro,
            "",
            "```text",
            help_text(script).rstrip("\n"),
            "```",
            "",
        ]
    while lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Write docs/cli.md from the commands' --help."
    )
    parser.add_argument(
        "--output", default=DEFAULT_OUTPUT, help="file to write (default: docs/cli.md)"
    )
    parser.add_argument(
        "--check", action="store_true", help="only check that the file is up to date"
    )
    args = parser.parse_args(argv)
    text = generate()
    from keras_gradattn.utils.io import write_or_check_generated

    return write_or_check_generated(args.output, text, args.check, "python scripts/make_cli_docs.py")


if __name__ == "__main__":
    sys.exit(main())
