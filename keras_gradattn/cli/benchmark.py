"""`gradattn-benchmark`: model and input-pipeline throughput on each Keras backend.

    python scripts/benchmark.py                               # the full grid (an hour or more on a CPU)
    python scripts/benchmark.py --backends jax --batch-sizes 128 --precisions float32

Models: training and inference images/s per backend x model x batch size x
precision x compilation mode, through `model.fit` / `model.predict` epochs
(keras_gradattn/benchmarks/timing.py: warm-up excluded, median of interleaved
rounds). Pipelines: images/s that each dataset source format's training
pipeline (tf.data and PyDataset) delivers, against the rate the models
consume at that dataset's input size. Each backend runs in its own
subprocess. Results: `<output>.json` and `<output>.md`, written atomically,
and the targets met or missed:

- GradAttn / ResNet-18 training step time <= 1.10 (JAX, TensorFlow);
- Keras on PyTorch within 2x of JAX (training images/s, same model and setting);
- each pipeline >= 3x the fastest model's consumption rate.

Compilation modes (`--jit-modes`): "on" and "off" mean, per backend,

| backend | on | off |
| --- | --- | --- |
| tensorflow | `tf.function` + XLA (`jit_compile=True`) | `tf.function` graph, no XLA (`jit_compile=False`) |
| jax | `jax.jit` of the whole step (Keras' only compiled mode) | `run_eagerly=True`: op-by-op dispatch, no `jax.jit` |
| torch | `torch.compile` (`jit_compile=True`) | eager PyTorch (Keras' default on torch) |

"auto" measures on and off on TensorFlow and JAX, and off only on torch:
`torch.compile` of these models takes minutes per model on a CPU; ask for
it with `--jit-modes on,off`.
"""

import argparse
import json
import os
import sys
import tempfile

from keras_gradattn import benchmarks
from keras_gradattn.benchmarks.reporting import JIT_MEANINGS
from keras_gradattn.backend import BACKENDS
from keras_gradattn.cli.arguments import BadInput as _BadInput
from keras_gradattn.cli.arguments import HelpFormatter
from keras_gradattn.cli.benchmark_workers import run_backend_worker
from keras_gradattn.cli.arguments import OneLineErrorParser
from keras_gradattn.cli.arguments import image_shape
from keras_gradattn.cli.arguments import key_value_text
from keras_gradattn.cli.arguments import names as name_list
from keras_gradattn.cli.arguments import names_from
from keras_gradattn.cli.arguments import parse_command_line
from keras_gradattn.cli.arguments import program_arguments
from keras_gradattn.cli.arguments import positive_int
from keras_gradattn.cli.keras_backend import choose_keras_backend
from keras_gradattn.cli.arguments import positive_ints
from keras_gradattn.utils.dependencies import module_available

DEFAULT_MODELS = ("resnet18", "gradattn_nope", "gradattn_learned_pe", "gradattn_rope")
BASELINE = "resnet18"
PRECISIONS = ("float32", "mixed_bfloat16")
JIT_MODES = ("on", "off")
AUTO_JIT_MODES = {"tensorflow": ("on", "off"), "jax": ("on", "off"), "torch": ("off",)}
PIPELINE_KINDS = ("tf.data", "pydataset")
# Source formats and the dataset read through each (docs/data.md).
PIPELINE_SOURCES = {
    "idx": "fashion_mnist",
    "medmnist_npz": "bloodmnist",
    "sklearn": "digits",
    "synthetic": "synthetic",
}


def build_parser():
    parser = OneLineErrorParser(
        prog="benchmark.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add = parser.add_argument
    add("--backends", type=names_from(BACKENDS, "backends"), default=list(BACKENDS),
        help="backends, each measured in its own subprocess")
    add("--models", type=name_list, default=list(DEFAULT_MODELS),
        help=f"create_model names; step-time ratios are taken against {BASELINE}")
    add("--input-shape", type=image_shape, default=(28, 28, 1), help="HxWxC of the model benchmark")
    add("--num-classes", type=positive_int, default=10)
    add("--batch-sizes", type=positive_ints, default=[32, 128])
    add("--precisions", type=names_from(PRECISIONS, "precisions"), default=list(PRECISIONS))
    add("--jit-modes", default="auto",
        help="'auto' (TensorFlow and JAX: on,off; torch: off) or a list of on,off for every backend")
    add("--rounds", type=positive_int, default=5,
        help="interleaved timing rounds after one untimed warm-up call each; the median counts")
    add("--steps-per-round", type=positive_int, default=10, help="steps per timed fit/predict call")
    add("--eager-steps-per-round", type=positive_int, default=2,
        help="steps per call for JAX run_eagerly, which is slow")
    add("--model-arg", action="append", type=key_value_text, default=[], metavar="KEY=VALUE",
        help="create_model override for every model (e.g. stem_width=8 for a smoke test)")
    add("--pipelines", type=names_from(PIPELINE_KINDS, "pipelines"), default=list(PIPELINE_KINDS))
    add("--pipeline-sources", type=names_from(tuple(PIPELINE_SOURCES), "pipeline sources"),
        default=list(PIPELINE_SOURCES), help="source formats whose training pipeline is measured")
    add("--pipeline-batches", type=positive_int, default=20, help="batches per timed pipeline round")
    add("--pipeline-batch-size", type=positive_int, default=128)
    add("--pipeline-models", type=name_list, default=["resnet18", "gradattn_learned_pe"],
        help="models whose training rate at each dataset's input size is the pipeline's demand "
        "(the fastest of them counts)")
    add("--data-dir", default=None, help="where the FashionMNIST IDX files are (default: discovery)")
    add("--skip-models", action="store_true", help="pipelines only")
    add("--skip-pipelines", action="store_true", help="models only")
    add("--output", default="results/benchmarks/throughput",
        help="path prefix of the .json and .md results")
    add("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def jit_modes_for(backend, option):
    if option == "auto":
        return AUTO_JIT_MODES[backend]
    modes = [mode.strip() for mode in option.split(",") if mode.strip()]
    return tuple(modes)


def _check_args(args):
    if args.jit_modes != "auto":
        modes = [mode.strip() for mode in args.jit_modes.split(",") if mode.strip()]
        if not modes or any(mode not in JIT_MODES for mode in modes):
            raise _BadInput(f"--jit-modes {args.jit_modes!r}: expected 'auto' or a list of on, off")
    if args.skip_models and args.skip_pipelines:
        raise _BadInput("--skip-models with --skip-pipelines leaves nothing to measure")


# --- the worker: one backend, in its own process ------------------------------------


def _progress(message):
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def _compile(model, backend, jit_mode):
    """Compiles for "on", "off" or "auto" (Keras' default); returns "on" or
    "off", what Keras chose."""
    if backend == "jax" and jit_mode == "off":
        model.compile(run_eagerly=True)
    else:
        model.compile(jit_compile="auto" if jit_mode == "auto" else jit_mode == "on")
    return "on" if model.jit_compile else "off"


def _model_overrides(texts):
    from keras_gradattn.training.config import parse_key_value

    return dict(parse_key_value(text) for text in texts)


def _build(name, num_classes, input_shape, overrides):
    import keras

    from keras_gradattn import create_model
    from keras_gradattn.models.registry import get_model_entry

    allowed = set(get_model_entry(name).allowed_overrides)
    keras.utils.set_random_seed(0)
    return create_model(
        name, num_classes=num_classes, input_shape=input_shape,
        **{key: value for key, value in overrides.items() if key in allowed},
    )  # fmt: skip


def measure_models(args, backend):
    """Training and inference rows for every model x batch x precision x jit mode."""
    import keras

    overrides = _model_overrides(args.model_arg)
    rows = []
    shape = tuple(args.input_shape)
    label = "x".join(map(str, shape))
    for precision in args.precisions:
        for jit_mode in jit_modes_for(backend, args.jit_modes):
            keras.config.set_dtype_policy(precision)
            eager = backend == "jax" and jit_mode == "off"
            steps = args.eager_steps_per_round if eager else args.steps_per_round
            functions = {}
            for name in args.models:
                _progress(f"{backend} {precision} jit {jit_mode}: building {name}")
                model = _build(name, args.num_classes, shape, overrides)
                _compile(model, backend, jit_mode)
                for batch_size in args.batch_sizes:
                    images, labels = benchmarks.synthetic_batch(batch_size, shape, args.num_classes)
                    functions[(name, batch_size, "train")] = benchmarks.training_function(
                        model, images, labels, steps
                    )
                    functions[(name, batch_size, "infer")] = benchmarks.inference_function(model, images, steps)
            # Interleaved by group of equal work (same batch size), so every
            # model of a group sees the same slow spells of a shared machine.
            for batch_size in args.batch_sizes:
                group = {key: function for key, function in functions.items() if key[1] == batch_size}
                measured = benchmarks.measure_interleaved(
                    group, batch_size * steps, rounds=args.rounds,
                    progress=lambda message: _progress(
                        f"{backend} {precision} jit {jit_mode} batch {batch_size}: {message}"
                    ),
                )  # fmt: skip
                for (name, _, mode), measurement in measured.items():
                    baseline = measured.get((BASELINE, batch_size, mode))
                    rows.append({
                        "backend": backend, "model": name, "input_shape": label,
                        "batch_size": batch_size, "precision": precision, "jit": jit_mode,
                        "jit_meaning": JIT_MEANINGS[(backend, jit_mode)], "mode": mode,
                        "images_per_second": measurement.images_per_second,
                        "median_step_ms": 1000 * measurement.median_call_time / steps,
                        "spread": measurement.spread, "rounds": args.rounds, "steps_per_round": steps,
                        "step_time_ratio_vs_resnet18": (
                            measurement.median_call_time / baseline.median_call_time if baseline else None
                        ),
                    })  # fmt: skip
            keras.config.set_dtype_policy("float32")
    return rows


def _load_source(source, args, scratch):
    from keras_gradattn import data

    dataset = PIPELINE_SOURCES[source]
    if source == "medmnist_npz":
        return data.load_dataset(dataset, data_dir=benchmarks.write_fake_medmnist_npz(scratch))
    if source == "idx":
        return data.load_dataset(dataset, data_dir=args.data_dir)
    if source == "synthetic":
        return data.load_dataset(dataset, num_examples=4096)
    return data.load_dataset(dataset)


def measure_pipelines(args, backend):
    """Pipeline images/s per source format and kind, and the models' demand at each input size."""
    import keras

    from keras_gradattn import data

    overrides = _model_overrides(args.model_arg)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gradattn-benchmark-") as scratch:
        for source in args.pipeline_sources:
            try:
                splits = _load_source(source, args, scratch)
            except data.DatasetError as error:
                _progress(f"{backend} pipeline {source}: skipped ({error})")
                rows.append({"backend": backend, "source": source, "dataset": PIPELINE_SOURCES[source],
                             "skipped": str(error)})  # fmt: skip
                continue
            spec = splits.spec
            functions = {}
            for kind in args.pipelines:
                if kind == "tf.data" and not module_available("tensorflow"):
                    continue
                pipeline = data.make_pipeline(
                    splits.train, spec, batch_size=args.pipeline_batch_size, training=True, seed=0,
                    pipeline=kind, drop_remainder=True,
                )  # fmt: skip
                functions[("pipeline", kind)] = benchmarks.pipeline_function(pipeline, args.pipeline_batches)
            shape = tuple(spec.input_shape)
            images, labels = benchmarks.synthetic_batch(args.pipeline_batch_size, shape, spec.num_classes)
            for name in args.pipeline_models:
                _progress(f"{backend} pipeline {source}: building {name} for {shape}")
                model = _build(name, spec.num_classes, shape, overrides)
                # What `gradattn-train` users get: on a CPU-only machine that
                # is TensorFlow without XLA, several times faster than with it.
                demand_jit = _compile(model, backend, "auto")
                functions[("model", name)] = benchmarks.training_function(
                    model, images, labels, args.pipeline_batches
                )
            measured = benchmarks.measure_interleaved(
                functions, args.pipeline_batch_size * args.pipeline_batches, rounds=args.rounds,
                progress=lambda message: _progress(f"{backend} pipeline {source}: {message}"),
            )  # fmt: skip
            demand_model = max(
                args.pipeline_models, key=lambda name: measured[("model", name)].images_per_second
            )
            demand = measured[("model", demand_model)].images_per_second
            for (kind_or_model, name), measurement in measured.items():
                if kind_or_model != "pipeline":
                    continue
                rows.append({
                    "backend": backend, "source": source, "dataset": spec.name, "pipeline": name,
                    "input_shape": "x".join(map(str, shape)), "augmentation": spec.augmentation,
                    "batch_size": args.pipeline_batch_size,
                    "images_per_second": measurement.images_per_second, "spread": measurement.spread,
                    "model_images_per_second": {
                        model: measured[("model", model)].images_per_second for model in args.pipeline_models
                    },
                    "demand_model": demand_model, "demand_images_per_second": demand,
                    "demand_jit": demand_jit, "ratio_to_demand": measurement.images_per_second / demand,
                })  # fmt: skip
            keras.backend.clear_session()
    return rows


def run_worker(args):
    import keras

    backend = keras.backend.backend()
    machine = benchmarks.describe_environment()
    # Other jobs on the machine change absolute figures (not the interleaved ratios).
    machine["load_average_start"] = round(os.getloadavg()[0], 2)
    report = {"machine": machine, "models": [], "pipelines": []}
    if not args.skip_models:
        report["models"] = measure_models(args, backend)
    if not args.skip_pipelines:
        report["pipelines"] = measure_pipelines(args, backend)
    machine["load_average_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report))
    return 0


# --- the parent: every backend, targets, files ----------------------------------------


def run_backend(argv, backend):
    """The worker's report, or None when it failed (its error is on stderr)."""
    return run_backend_worker("keras_gradattn.cli.benchmark", "benchmark.py", argv, backend)


def main(argv=None):
    parser = build_parser()
    argv = program_arguments(parser, argv)
    args, status = parse_command_line(parser, argv, validate=_check_args)
    if args is None:
        return status
    if args.worker:
        # A worker measures the backend its parent set in KERAS_BACKEND.
        choose_keras_backend()
        return run_worker(args)

    from keras_gradattn.utils import atomic_write_json
    from keras_gradattn.utils import atomic_write_text

    reports, failed = [], []
    for backend in args.backends:
        _progress(f"{backend}: starting its worker (1-minute load average {os.getloadavg()[0]:.2f})")
        report = run_backend([arg for arg in argv if arg != "--worker"], backend)
        if report is None:
            failed.append(backend)
        else:
            reports.append(report)
    checks = benchmarks.evaluate_targets(reports)
    command = " ".join(["python scripts/benchmark.py", *argv]).strip()
    text = benchmarks.format_throughput_markdown(
        reports, checks, command, rounds=args.rounds, pipeline_batch_size=args.pipeline_batch_size,
        pipeline_models=args.pipeline_models,
    )  # fmt: skip
    if failed:
        text += f"\nFailed (no figures): {', '.join(failed)}.\n"
    atomic_write_json(f"{args.output}.json", {"command": command, "reports": reports, "targets": checks})
    atomic_write_text(f"{args.output}.md", text)
    print(benchmarks.format_targets(checks))
    print(f"wrote {args.output}.json and {args.output}.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
