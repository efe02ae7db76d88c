"""What a whole `gradattn-train` epoch costs beyond its training steps.

For each backend and model: the bare training throughput (`model.fit` on
arrays already in memory, the same batch each step: forward, backward, the
protocol's optimizer) against a real `gradattn-train` run on
FashionMNIST-shaped IDX files (the IDX reader, the input pipeline with the
paper's augmentation, the protocol's callbacks, checkpoints, the journal,
TensorBoard and gradient-norm logging at the default frequency). The run's
epochs are timed without their validation pass (the bare step has none; it
is reported apart), the first epoch (compilation) is left out, and bare
rounds are measured before and after the run so that a slow spell of a
shared machine hits both. Target: epoch throughput >= 0.9x the bare step.

Each timed epoch is split into its training steps, the waits between them
(input pipeline, per-step callbacks) and its epoch-end work (checkpoints,
journal, logs), which a short benchmark epoch magnifies: the table also
projects the ratio to a full FashionMNIST epoch from those parts.

    python scripts/benchmark_epoch.py --backends torch,tensorflow,jax
"""

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

from keras_gradattn import benchmarks
from keras_gradattn.backend import BACKENDS
from keras_gradattn.cli.arguments import BadInput
from keras_gradattn.cli.arguments import HelpFormatter
from keras_gradattn.cli.benchmark_workers import run_backend_worker
from keras_gradattn.cli.arguments import OneLineErrorParser
from keras_gradattn.cli.arguments import names
from keras_gradattn.cli.arguments import names_from
from keras_gradattn.cli.arguments import parse_command_line
from keras_gradattn.cli.arguments import positive_int
from keras_gradattn.cli.arguments import program_arguments
from keras_gradattn.cli.keras_backend import choose_keras_backend
from keras_gradattn.training.config import DATA_PLACEMENTS

PROG = "benchmark_epoch.py"
DEFAULT_MODELS = "resnet18,gradattn_learned_pe"
TARGET_RATIO = 0.9
INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
# FashionMNIST's training split under the paper's protocol: 70% of 70,000 images.
FULL_EPOCH_IMAGES = 49_000


def build_parser():
    parser = OneLineErrorParser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    add = parser.add_argument
    add("--backends", type=names_from(BACKENDS, "backends"), default=list(BACKENDS),
        help="backends to measure, each in its own subprocess")
    add("--models", type=names, default=DEFAULT_MODELS.split(","), help="create_model names")
    add("--batch-size", type=positive_int, default=128)
    add("--train-images", type=positive_int, default=6400,
        help="training images an epoch (the run's --max-train-samples; 6400 = 50 steps of 128)")
    add("--epochs", type=positive_int, default=4,
        help="epochs of the run; the first (compilation) is not counted, so at least 2")
    add("--rounds", type=positive_int, default=3,
        help="bare-step rounds before the run and again after it (one round = one epoch's steps)")
    add("--data-placement", choices=DATA_PLACEMENTS, default="auto",
        help="the run's --data-placement (auto: the device on an accelerator, the host pipeline on a CPU)")
    add("--data-dir", default=None,
        help="FashionMNIST's IDX files to train on (default: FashionMNIST-shaped random images written to a "
        "temporary folder)")
    add("--output", default="results/benchmarks/epoch_cpu", help="path prefix of the .json and .md results")
    add("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def _progress(backend):
    def report(message):
        print(f"[{backend}] {message}", file=sys.stderr, flush=True)

    return report


def _epoch_timer():
    """A callback timing each epoch's training part (the epoch minus its validation pass), split into
    the training steps, the waits between them (input pipeline and per-step callbacks) and the
    epoch-end work (checkpoints, journal, logs)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.train_seconds, self.validation_seconds = [], []
            self.step_seconds, self.wait_seconds, self.epoch_end_seconds = [], [], []

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch_start = self._last_step_end = time.perf_counter()
            self._validation = self._steps = self._waits = 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self._step_start = time.perf_counter()
            self._waits += self._step_start - self._last_step_end

        def on_train_batch_end(self, batch, logs=None):
            self._last_step_end = time.perf_counter()
            self._steps += self._last_step_end - self._step_start

        def on_test_begin(self, logs=None):
            self._test_start = time.perf_counter()

        def on_test_end(self, logs=None):
            self._validation += time.perf_counter() - self._test_start

        def on_epoch_end(self, epoch, logs=None):
            # Last in the callback list: the protocol's epoch-end work
            # (checkpoint, journal, backup, logs) is inside the epoch.
            train = time.perf_counter() - self._epoch_start - self._validation
            self.train_seconds.append(train)
            self.validation_seconds.append(self._validation)
            self.step_seconds.append(self._steps)
            self.wait_seconds.append(self._waits)
            self.epoch_end_seconds.append(train - self._steps - self._waits)

    return EpochTimer()


def _bare_step(model_name, args, progress):
    import keras
    import numpy as np

    from keras_gradattn import create_model
    from keras_gradattn.training import protocol
    from keras_gradattn.training.config import TrainConfig

    defaults = TrainConfig()
    keras.utils.set_random_seed(0)
    model = create_model(model_name, num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE)
    images, labels = benchmarks.synthetic_batch(args.batch_size, INPUT_SHAPE, NUM_CLASSES)
    if args.data_placement == "device":
        # The bare step of the device path: its batch held on the device, fed by row indices.
        model = benchmarks.device_resident_model(model, args.batch_size)
        images = np.arange(args.batch_size, dtype="int32")
    model.compile(optimizer=protocol.build_optimizer(
        defaults.learning_rate, defaults.weight_decay, defaults.decoupled_weight_decay
    ))  # fmt: skip
    steps = args.train_images // args.batch_size
    train = benchmarks.training_function(model, images, labels, steps)
    progress(f"{model_name}: bare step, warming up")
    train()
    return train, steps * args.batch_size


def _time_rounds(function, rounds):
    return [benchmarks.call_seconds(function) for _ in range(rounds)]


def _run_epochs(model_name, args, data_dir, run_dir, progress):
    from keras_gradattn.training.config import TrainConfig
    from keras_gradattn.training.trainer import run_training

    config = TrainConfig(
        dataset="fashion_mnist", model=model_name, data_dir=data_dir, output_dir=run_dir,
        epochs=args.epochs, batch_size=args.batch_size, max_train_samples=args.train_images,
        probe_batches=0, verbose=0, seed=0, data_placement=args.data_placement,
    )  # fmt: skip
    timer = _epoch_timer()
    progress(f"{model_name}: gradattn-train, {args.epochs} epochs of {args.train_images} images")
    result = run_training(config, extra_callbacks=[timer])
    with open(os.path.join(result.run_dir, "config.json")) as file:
        log_gradients = json.load(file)["train_config"]["log_gradients"]
    return timer, log_gradients, result.metrics["data_placement"]


def run_worker(args):
    """Measures every model under the current KERAS_BACKEND; prints one JSON line."""
    import keras

    backend = keras.backend.backend()
    progress = _progress(backend)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        # Pooled and re-split 70/15/15 by the paper's protocol: 1.5x the
        # training images in all leaves enough for --max-train-samples.
        total = int(args.train_images * 1.5) + 1
        data_dir = args.data_dir or benchmarks.write_fake_fashion_mnist(
            os.path.join(folder, "data"), num_train=total * 6 // 7, num_test=total - total * 6 // 7
        )
        for model_name in args.models:
            bare, images_per_round = _bare_step(model_name, args, progress)
            bare_times = _time_rounds(bare, args.rounds)
            timer, log_gradients, placement = _run_epochs(
                model_name, args, data_dir, os.path.join(folder, model_name), progress
            )
            progress(f"{model_name}: bare step again")
            bare_times += _time_rounds(bare, args.rounds)
            timed = slice(1, None)  # the first epoch compiles
            epoch_times = timer.train_seconds[timed]
            bare_rate = images_per_round / statistics.median(bare_times)
            epoch_rate = args.train_images / statistics.median(epoch_times)
            row = {
                "model": model_name,
                "bare_images_per_second": bare_rate,
                "bare_spread": _spread(bare_times),
                "epoch_images_per_second": epoch_rate,
                "epoch_spread": _spread(epoch_times),
                "ratio": epoch_rate / bare_rate,
                "validation_seconds": statistics.median(timer.validation_seconds[timed]),
                "epoch_train_seconds": epoch_times,
                "epoch_step_seconds": timer.step_seconds[timed],
                "epoch_wait_seconds": timer.wait_seconds[timed],
                "epoch_end_seconds": timer.epoch_end_seconds[timed],
                "bare_round_seconds": bare_times,
                "log_gradients": log_gradients,
                "data_placement": placement,
            }  # fmt: skip
            row.update(project_full_epoch(row, images_per_round, args))
            results.append(row)
    print(json.dumps({"backend": backend, "machine": benchmarks.describe_environment(), "results": results}))
    return 0


def project_full_epoch(row, images_per_round, args):
    """The epoch / bare ratio a full FashionMNIST epoch would show, from this run's parts.

    A short benchmark epoch magnifies its fixed cost (the epoch-end checkpoints and logs) against its
    steps; a real epoch has `FULL_EPOCH_IMAGES` images. Per step, the run's steps and waits are taken
    as measured; the epoch-end seconds are added once.
    """
    steps = math.ceil(args.train_images / args.batch_size)
    full_steps = math.ceil(FULL_EPOCH_IMAGES / args.batch_size)
    bare_step = statistics.median(row["bare_round_seconds"]) / (images_per_round / args.batch_size)
    loop_step = statistics.median(
        (step + wait) / steps for step, wait in zip(row["epoch_step_seconds"], row["epoch_wait_seconds"])
    )
    epoch_end = statistics.median(row["epoch_end_seconds"])
    return {
        "loop_ratio": bare_step / loop_step,
        "full_epoch_ratio": full_steps * bare_step / (full_steps * loop_step + epoch_end),
    }


def _spread(times):
    return (max(times) - min(times)) / statistics.median(times)


def format_table(reports, args):
    lines = [
        f"Batch {args.batch_size}, 28x28x1, {args.train_images} training images an epoch, epochs 2-{args.epochs} "
        f"of a gradattn-train run against {2 * args.rounds} bare rounds (before and after the run). "
        "Spread: (max - min) / median.",
        "",
        "| backend | model | data on | bare step img/s (spread) | epoch img/s (spread) | epoch / bare | target >= "
        f"{TARGET_RATIO} | steps and waits / bare | epoch-end s | projected at {FULL_EPOCH_IMAGES:,} images "
        f"| target >= {TARGET_RATIO} | validation s | gradient log every |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for report in reports:
        for row in report["results"]:
            lines.append(
                f"| {report['backend']} | {row['model']} | {row.get('data_placement', 'host')} "
                f"| {row['bare_images_per_second']:.0f} "
                f"({row['bare_spread']:.0%}) | {row['epoch_images_per_second']:.0f} ({row['epoch_spread']:.0%}) "
                f"| {row['ratio']:.2f}x | {_verdict(row['ratio'])} | {row['loop_ratio']:.2f}x "
                f"| {statistics.median(row['epoch_end_seconds']):.1f} | {row['full_epoch_ratio']:.2f}x "
                f"| {_verdict(row['full_epoch_ratio'])} | {row['validation_seconds']:.1f} | "
                f"{row['log_gradients']} steps |"
            )
    return "\n".join(lines) + "\n"


def _verdict(ratio):
    return "PASS" if ratio >= TARGET_RATIO else "MISS"


def run_backend(argv, backend):
    """The worker's report, or None when it failed (its error is on stderr)."""
    return run_backend_worker("keras_gradattn.cli.benchmark_epoch", PROG, argv, backend)


def _validate(args):
    if args.data_dir and not os.path.isdir(args.data_dir):
        raise BadInput(f"--data-dir {args.data_dir!r} is not a folder")
    if args.epochs < 2:
        raise BadInput(
            f"--epochs must be at least 2 (the first epoch compiles and is not counted); received {args.epochs}"
        )
    if args.train_images < args.batch_size:
        raise BadInput(f"--train-images ({args.train_images}) must be at least one batch (--batch-size {args.batch_size})")


def main(argv=None):
    parser = build_parser()
    argv = program_arguments(parser, argv)
    args, status = parse_command_line(parser, argv, validate=_validate)
    if args is None:
        return status
    if args.worker:
        choose_keras_backend()
        return run_worker(args)

    from keras_gradattn.utils import atomic_write_json
    from keras_gradattn.utils import atomic_write_text

    worker_argv = [arg for arg in argv if arg != "--worker"]
    reports, failed = [], []
    for backend in args.backends:
        report = run_backend(worker_argv, backend)
        (failed if report is None else reports).append(report or backend)
    table = format_table(reports, args)
    if failed:
        table += f"\nFailed (no figures): {', '.join(failed)}.\n"
    machine = reports[0]["machine"] if reports else {}
    command = " ".join(["python scripts/benchmark_epoch.py", *argv]).strip()
    atomic_write_json(f"{args.output}.json", {"command": command, "reports": reports})
    atomic_write_text(f"{args.output}.md", f"Command: `{command}`\n\nMachine: {_machine_line(machine)}\n\n{table}")
    print(table)
    return 1 if failed else 0


def _machine_line(machine):
    keys = ("processor", "cpu_count", "platform")
    return ", ".join(f"{key} {machine[key]}" for key in keys if machine.get(key)) or "unknown"


if __name__ == "__main__":
    sys.exit(main())
