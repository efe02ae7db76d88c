"""Training throughput of the paper's models on each Keras backend.

For every backend, input shape and model: images/s of full training steps
(forward, backward, optimizer update) through `model.fit` at a fixed batch,
compilation excluded, median over interleaved rounds; and each GradAttn
variant's step time over ResNet-18's, measured in the same process. Each backend runs in its own
subprocess, since the backend is fixed when Keras is imported.

    python scripts/benchmark_models.py --backends jax,tensorflow,torch
"""

import argparse
import json
import sys

from keras_gradattn import benchmarks
from keras_gradattn.backend import BACKENDS
from keras_gradattn.cli.arguments import HelpFormatter
from keras_gradattn.cli.benchmark_workers import run_backend_worker
from keras_gradattn.cli.arguments import OneLineErrorParser
from keras_gradattn.cli.arguments import image_shapes
from keras_gradattn.cli.arguments import names
from keras_gradattn.cli.arguments import names_from
from keras_gradattn.cli.arguments import parse_command_line
from keras_gradattn.cli.arguments import program_arguments
from keras_gradattn.cli.arguments import positive_int
from keras_gradattn.cli.keras_backend import choose_keras_backend

DEFAULT_MODELS = "resnet18,gradattn_nope,gradattn_learned_pe,gradattn_rope"
DEFAULT_SHAPES = "28x28x1,32x32x3"
BASELINE = "resnet18"


def build_parser():
    parser = OneLineErrorParser(
        prog="benchmark_models.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--backends", type=names_from(BACKENDS, "backends"), default=list(BACKENDS),
                        help="backends to measure, each in its own subprocess")
    parser.add_argument("--models", type=names, default=DEFAULT_MODELS.split(","),
                        help=f"create_model names; ratios are taken against {BASELINE}")
    parser.add_argument("--input-shapes", type=image_shapes, default=image_shapes(DEFAULT_SHAPES),
                        help="comma-separated HxWxC input shapes")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--num-classes", type=positive_int, default=10)
    parser.add_argument("--rounds", type=positive_int, default=7,
                        help="interleaved timing rounds; the median round counts "
                             "(after one untimed round: compilation, allocation)")
    parser.add_argument("--steps-per-round", type=positive_int, default=10,
                        help="training steps per round (one `fit` epoch)")
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32")
    parser.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                        help="Keras' jit_compile for model.compile")
    parser.add_argument("--output", default="results/benchmarks/models",
                        help="path prefix of the .json and .md results")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def _progress(backend):
    def report(message):
        print(f"[{backend}] {message}", file=sys.stderr, flush=True)

    return report


def run_worker(args):
    """Measures every model and shape under the current KERAS_BACKEND and
    prints one JSON line."""
    import keras

    from keras_gradattn import create_model

    backend = keras.backend.backend()
    progress = _progress(backend)
    keras.config.set_dtype_policy(args.precision)
    jit_compile = {"auto": "auto", "on": True, "off": False}[args.jit_compile]
    results = []
    for shape in args.input_shapes:
        label = "x".join(map(str, shape))
        images, labels = benchmarks.synthetic_batch(args.batch_size, shape, args.num_classes)
        steps = {}
        for name in args.models:
            progress(f"{label}: building {name}")
            keras.utils.set_random_seed(0)
            model = create_model(name, num_classes=args.num_classes, input_shape=shape)
            model.compile(jit_compile=jit_compile)
            steps[name] = benchmarks.training_function(
                model, images, labels, args.steps_per_round
            )
        measurements = benchmarks.measure_interleaved(
            steps, args.batch_size * args.steps_per_round, rounds=args.rounds,
            progress=lambda message: progress(f"{label}: {message}"),
        )
        baseline = measurements.get(BASELINE)
        for name, measurement in measurements.items():
            results.append({
                "input_shape": label,
                "model": name,
                "images_per_second": measurement.images_per_second,
                "median_step_ms": 1000 * measurement.median_call_time / args.steps_per_round,
                "spread": measurement.spread,
                "step_time_ratio_vs_resnet18": (
                    measurement.median_call_time / baseline.median_call_time
                    if baseline else None
                ),
            })
    print(json.dumps({"machine": benchmarks.describe_environment(), "results": results}))
    return 0


def run_backend(argv, backend):
    """The worker's report, or None when it failed (its error is on stderr)."""
    return run_backend_worker("keras_gradattn.cli.benchmark_models", "benchmark_models.py", argv, backend)


def main(argv=None):
    parser = build_parser()
    argv = program_arguments(parser, argv)
    args, status = parse_command_line(parser, argv)
    if args is None:
        return status
    if args.worker:
        # A worker measures the backend its parent set in KERAS_BACKEND.
        choose_keras_backend()
        return run_worker(args)

    from keras_gradattn.utils import atomic_write_json
    from keras_gradattn.utils import atomic_write_text

    worker_argv = [arg for arg in argv if arg != "--worker"]
    reports, failed = [], []
    for backend in args.backends:
        report = run_backend(worker_argv, backend)
        if report is None:
            failed.append(backend)
        else:
            reports.append(report)
    table = benchmarks.format_models_table(
        reports, batch_size=args.batch_size, precision=args.precision, jit_compile=args.jit_compile,
        steps_per_round=args.steps_per_round, rounds=args.rounds,
    )  # fmt: skip
    if failed:
        table += f"\nFailed (no figures): {', '.join(failed)}.\n"
    command = "python scripts/benchmark_models.py " + " ".join(argv)
    atomic_write_json(f"{args.output}.json", {"command": command.strip(), "reports": reports})
    atomic_write_text(f"{args.output}.md", f"Command: `{command.strip()}`\n\n{table}")
    print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
