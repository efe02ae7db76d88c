"""One-shot GPU check: plain PyTorch against our three backends, and a whole
FashionMNIST epoch per backend, with PASS or MISS beside the GPU targets.

In this order, each benchmark in its own subprocesses:
1. `benchmark_plain_torch.py`: training images/s of ResNet-18 and GradAttn
   (learned PE) in plain PyTorch and on each backend, at 28x28x1 and 32x32x3,
   float32 and bfloat16, our side on the device data path;
2. `benchmark_epoch.py`: a `gradattn-train` run per backend on FashionMNIST
   (the IDX files of `--data-dir`, else FashionMNIST-shaped random images),
   the full 49,000 training images an epoch (two epochs: the first compiles),
   its data on the device.

It writes `results/benchmarks/gpu_check_<device>.md` (and `.json`, and the
two benchmarks' own files beside them) with every figure and the targets:

- JAX end to end >= 30,000 images/s (the paper's protocol, about 50 epochs,
  in under 2 minutes of training on one H100-class GPU);
- the PyTorch backend end to end within 1.5x of JAX (>= JAX's images/s / 1.5);
- every backend >= plain PyTorch's training step (each model, shape and
  precision).

On a machine without a GPU it runs the same and names the device "cpu";
`--quick` shrinks every size (a test of the script, not a measurement).

    bash scripts/gpu_check.sh                       # about 8 minutes on one GPU
    bash scripts/gpu_check.sh --data-dir /path/to/fashion-mnist
"""

import json
import os
import re
import statistics
import subprocess
import sys
import time

from keras_gradattn.backend import BACKENDS
from keras_gradattn.cli.arguments import BadInput
from keras_gradattn.cli.arguments import HelpFormatter
from keras_gradattn.cli.arguments import OneLineErrorParser
from keras_gradattn.cli.arguments import image_shapes
from keras_gradattn.cli.arguments import names_from
from keras_gradattn.cli.arguments import parse_command_line
from keras_gradattn.cli.arguments import program_arguments

PROG = "gpu_check.py"
MODELS = ("resnet18", "gradattn_learned_pe")
SHAPES = ((28, 28, 1), (32, 32, 3))
PRECISIONS = ("float32", "bfloat16")
END_TO_END_TARGET = 30_000
TORCH_WITHIN_JAX = 1.5
FULL_EPOCH_IMAGES = 49_000
# Per-benchmark sizes: a measurement, and `--quick`'s test of the script.
SIZES = {
    False: {"batch_size": 128, "steps": 20, "rounds": 3, "train_images": FULL_EPOCH_IMAGES, "epochs": 2,
            "epoch_rounds": 1},
    True: {"batch_size": 8, "steps": 1, "rounds": 1, "train_images": 32, "epochs": 2, "epoch_rounds": 1},
}


def build_parser():
    parser = OneLineErrorParser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    add = parser.add_argument
    add("--backends", type=names_from(BACKENDS, "backends"), default=list(BACKENDS), help="Keras backends to measure")
    add("--models", type=names_from(MODELS, "models"), default=list(MODELS), help="models to measure")
    add("--shapes", type=image_shapes, default=list(SHAPES),
        help="HxWxC input shapes of the training-step benchmark")
    add("--precisions", type=names_from(PRECISIONS, "precisions"), default=list(PRECISIONS),
        help="precisions of the training-step benchmark")
    add("--data-dir", default=None, help="FashionMNIST's IDX files for the epoch benchmark (default: random images)")
    add("--output-dir", default="results/benchmarks", help="folder of the report and the benchmarks' files")
    add("--quick", action="store_true", help="tiny sizes: checks the script end to end, measures nothing")
    return parser


def _validate(args):
    if args.data_dir and not os.path.isdir(args.data_dir):
        raise BadInput(f"--data-dir {args.data_dir!r} is not a folder")


def device_name():
    """The first NVIDIA GPU's name (nvidia-smi), else "cpu"."""
    from keras_gradattn.utils.machine import gpu_names

    gpus = gpu_names()
    return gpus[0] if gpus else "cpu"


def device_slug(name):
    """`NVIDIA H100 80GB HBM3` -> `nvidia_h100_80gb_hbm3`: a file name."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "cpu"


def _run(command, progress):
    """Runs a benchmark script; returns its exit status (its output streams through)."""
    progress(" ".join(command[1:]))
    return subprocess.run(command, stdout=sys.stderr).returncode


def _step_benchmarks(args, sizes, folder, progress):
    """{(shape, precision): the plain PyTorch benchmark's JSON}, and the failures."""
    results, failed = {}, []
    for shape in args.shapes:
        for precision in args.precisions:
            shape_name = "x".join(map(str, shape))
            output = os.path.join(folder, f"gpu_check_steps_{shape_name}_{precision}")
            command = [
                sys.executable, "-m", "keras_gradattn.cli.benchmark_plain_torch",
                "--backends", ",".join(args.backends), "--models", ",".join(args.models),
                "--input-shape", shape_name, "--precision", precision, "--data-placement", "device",
                "--batch-size", str(sizes["batch_size"]), "--steps", str(sizes["steps"]),
                "--rounds", str(sizes["rounds"]), "--output", output,
            ]  # fmt: skip
            if _run(command, progress) == 0:
                with open(f"{output}.json") as file:
                    results[(shape_name, precision)] = json.load(file)
            else:
                failed.append(f"training steps {shape_name} {precision}")
    return results, failed


def _epoch_benchmark(args, sizes, folder, progress):
    output = os.path.join(folder, "gpu_check_epoch")
    command = [
        sys.executable, "-m", "keras_gradattn.cli.benchmark_epoch", "--backends", ",".join(args.backends),
        "--models", ",".join(args.models), "--batch-size", str(sizes["batch_size"]),
        "--train-images", str(sizes["train_images"]), "--epochs", str(sizes["epochs"]),
        "--rounds", str(sizes["epoch_rounds"]), "--data-placement", "device", "--output", output,
    ]  # fmt: skip
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    status = _run(command, progress)
    if not os.path.exists(f"{output}.json"):
        return None, ["epoch"]
    with open(f"{output}.json") as file:
        report = json.load(file)
    return report, [] if status == 0 else ["epoch (some backends)"]


def end_to_end_rows(epoch_report):
    """Per backend and model: median training seconds of an epoch (validation
    apart), its images/s, and the validation pass's seconds."""
    rows = []
    for report in (epoch_report or {}).get("reports", []):
        for row in report["results"]:
            rows.append({
                "backend": report["backend"], "model": row["model"],
                "epoch_seconds": statistics.median(row["epoch_train_seconds"]),
                "images_per_second": row["epoch_images_per_second"],
                "validation_seconds": row["validation_seconds"],
                "data_placement": row.get("data_placement", "host"),
            })  # fmt: skip
    return rows


def evaluate_gpu_targets(step_results, rows):
    """[(target, subject, figure, "PASS" | "MISS")] for every target whose
    figures were measured."""
    verdicts = []
    by_backend = {}
    for row in rows:
        by_backend.setdefault(row["model"], {})[row["backend"]] = row["images_per_second"]
    for model, rates in by_backend.items():
        if "jax" in rates:
            jax_rate = rates["jax"]
            verdicts.append((f"JAX end to end >= {END_TO_END_TARGET:,} img/s", f"{model}", f"{jax_rate:,.0f} img/s",
                             "PASS" if jax_rate >= END_TO_END_TARGET else "MISS"))  # fmt: skip
            if "torch" in rates:
                ratio = jax_rate / rates["torch"]
                verdicts.append((f"torch end to end within {TORCH_WITHIN_JAX}x of JAX", model, f"JAX {ratio:.2f}x torch",
                                 "PASS" if ratio <= TORCH_WITHIN_JAX else "MISS"))  # fmt: skip
    for (shape, precision), result in step_results.items():
        for model, contenders in result["summary"].items():
            for backend, figures in contenders.items():
                if backend not in BACKENDS:
                    continue
                ratio = figures["ratio"]
                verdicts.append(("backend >= plain PyTorch (training step)", f"{model}, {shape} {precision}, {backend}",
                                 f"{ratio:.2f}x", "PASS" if ratio >= 1.0 else "MISS"))  # fmt: skip
    return verdicts


def format_report(name, args, step_results, rows, verdicts, failed, command, elapsed):
    kind = "CPU (no GPU found: these are not GPU figures)" if name == "cpu" else f"GPU: {name}"
    lines = [
        f"Command: `{command}`", "",
        f"Device: {kind}. {'Quick sizes: a test of the script, not a measurement. ' if args.quick else ''}"
        f"Wall time of the check: {elapsed:.0f} s.", "",
        "## Training step: plain PyTorch against each backend (our data on the device)", "",
        "| model | input | precision | contender | img/s (median) | ratio to plain PyTorch |",
        "| --- | --- | --- | --- | ---: | ---: |",
    ]  # fmt: skip
    for (shape, precision), result in step_results.items():
        for model, contenders in result["summary"].items():
            for contender, figures in contenders.items():
                lines.append(f"| {model} | {shape} | {precision} | {contender} | "
                             f"{figures['images_per_second']:,.0f} | {figures['ratio']:.2f}x |")  # fmt: skip
    lines += ["", "## A whole gradattn-train epoch on FashionMNIST-shaped data", "",
              "| backend | model | data on | epoch s (training) | img/s | validation s |",
              "| --- | --- | --- | ---: | ---: | ---: |"]  # fmt: skip
    for row in rows:
        lines.append(f"| {row['backend']} | {row['model']} | {row['data_placement']} | {row['epoch_seconds']:.1f} | "
                     f"{row['images_per_second']:,.0f} | {row['validation_seconds']:.1f} |")  # fmt: skip
    lines += ["", "## Targets", "", "| target | subject | figure | result |", "| --- | --- | --- | --- |"]
    lines += [f"| {target} | {subject} | {figure} | {verdict} |" for target, subject, figure, verdict in verdicts]
    if failed:
        lines += ["", f"Failed (no figures): {', '.join(failed)}."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = build_parser()
    argv = program_arguments(parser, argv)
    args, status = parse_command_line(parser, argv, validate=_validate)
    if args is None:
        return status
    from keras_gradattn.utils import atomic_write_json
    from keras_gradattn.utils import atomic_write_text

    def progress(message):
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    name = device_name()
    os.makedirs(args.output_dir, exist_ok=True)
    sizes = SIZES[args.quick]
    step_results, failed = _step_benchmarks(args, sizes, args.output_dir, progress)
    epoch_report, epoch_failed = _epoch_benchmark(args, sizes, args.output_dir, progress)
    rows = end_to_end_rows(epoch_report)
    verdicts = evaluate_gpu_targets(step_results, rows)
    command = " ".join(["bash scripts/gpu_check.sh", *argv]).strip()
    elapsed = time.perf_counter() - started
    report = format_report(name, args, step_results, rows, verdicts, failed + epoch_failed, command, elapsed)
    output = os.path.join(args.output_dir, f"gpu_check_{device_slug(name)}")
    atomic_write_json(f"{output}.json", {
        "command": command, "device": name, "quick": args.quick, "seconds": elapsed,
        "end_to_end": rows, "verdicts": [dict(zip(("target", "subject", "figure", "result"), v)) for v in verdicts],
        "failed": failed + epoch_failed,
    })  # fmt: skip
    atomic_write_text(f"{output}.md", report)
    print(report)
    return 1 if failed or epoch_failed else 0


if __name__ == "__main__":
    sys.exit(main())
