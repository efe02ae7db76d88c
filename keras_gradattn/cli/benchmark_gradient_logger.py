"""Step-time overhead of GradientNormLogger, measured in one run.

For the backend chosen by KERAS_BACKEND, one model and one in-memory data set
are trained in alternating rounds: without the callback, with it at
`update_freq=100`, and with it at every step. Each fit runs a few epochs of a
fixed number of steps; its first epoch (tracing/compilation and warm-up) is
dropped and the step time of every other epoch is its wall time divided by its
steps. The overhead is the median step time with the callback over the median
without, minus one. Epoch wall times include everything the callback does
(its reads at batch begin, its epoch-end work and the writer flush).

    KERAS_BACKEND=jax python scripts/benchmark_gradient_logger.py --output results/gradient_logger_jax.json
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

TARGETS = {"100": 0.02, "1": 0.10}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=(
            "Measure the training step-time overhead of GradientNormLogger "
            "(KERAS_BACKEND selects the backend) and write the figures as JSON."
        )
    )
    parser.add_argument("--batch-size", type=int, default=128, help="examples per step (default 128)")
    parser.add_argument(
        "--steps-per-epoch", type=int, default=100, help="steps per timed epoch (default 100)"
    )
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per fit; the first is warm-up and dropped (default 3)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds over the configurations (default 3)"
    )
    parser.add_argument(
        "--update-freqs",
        default="100,1",
        help="comma-separated update_freq values to measure (default '100,1')",
    )
    parser.add_argument("--histograms", action="store_true", help="also keep gradients for histograms")
    parser.add_argument(
        "--jit-compile",
        choices=["auto", "true", "false"],
        default="auto",
        help="model.compile(jit_compile=...) (default auto)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and data (default 0)")
    parser.add_argument("--output", help="JSON file for the figures (default: print only)")
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps_per_epoch", "rounds"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive; received {getattr(args, name)}")
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2 (the first is dropped); received {args.epochs}")
    try:
        args.update_freqs = [int(value) for value in args.update_freqs.split(",")]
    except ValueError:
        parser.error(f"--update-freqs must be comma-separated integers; received {args.update_freqs!r}")
    if any(value <= 0 for value in args.update_freqs):
        parser.error(f"--update-freqs must be positive; received {args.update_freqs}")
    return args


def build_conv_net(seed):
    """A small conv net for 28x28x1 inputs: 4 conv+BN blocks in two stages, a head."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for stage, filters in (("stage1", 32), ("stage2", 64)):
        for block in ("block1", "block2"):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{stage}_{block}_conv")(x)
            x = layers.BatchNormalization(name=f"{stage}_{block}_bn")(x)
            x = layers.ReLU(name=f"{stage}_{block}_relu")(x)
        x = layers.MaxPooling2D(name=f"{stage}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(128, activation="relu", name="fc")(x)
    x = layers.Dropout(0.1, name="dropout")(x)
    outputs = layers.Dense(10, name="head")(x)
    return keras.Model(inputs, outputs, name="bench_convnet")


class EpochTimer:
    """Wall time of each epoch, from on_epoch_begin to on_epoch_end."""

    def __init__(self):
        import keras

        timer = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                timer._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                timer.seconds.append(time.perf_counter() - timer._start)

        self.seconds = []
        self.callback = _Callback()


def run(args):
    import keras
    import numpy as np

    from keras_gradattn.callbacks import GradientNormLogger

    backend = keras.backend.backend()
    rng = np.random.default_rng(args.seed)
    num_examples = args.batch_size * args.steps_per_epoch
    x = rng.normal(size=(num_examples, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, size=(num_examples,)).astype("int32")

    model = build_conv_net(args.seed)
    jit_compile = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    configurations = ["baseline"] + [str(freq) for freq in args.update_freqs]
    step_seconds = {name: [] for name in configurations}
    with tempfile.TemporaryDirectory(prefix="gradient_logger_bench_") as log_root:
        for round_index in range(args.rounds):
            for name in configurations:
                timer = EpochTimer()
                callbacks = [timer.callback]
                if name != "baseline":
                    log_dir = os.path.join(log_root, f"{name}_{round_index}")
                    logger = GradientNormLogger(log_dir, update_freq=int(name), histograms=args.histograms)
                    callbacks.insert(0, logger)  # before the timer: its epoch-end work is timed
                model.fit(
                    x,
                    y,
                    batch_size=args.batch_size,
                    epochs=args.epochs,
                    shuffle=False,
                    verbose=0,
                    callbacks=callbacks,
                )
                per_step = [seconds / args.steps_per_epoch for seconds in timer.seconds[1:]]
                step_seconds[name].extend(per_step)
                print(
                    f"round {round_index + 1}/{args.rounds} {name:>8}: "
                    + ", ".join(f"{1000 * s:.2f}" for s in per_step)
                    + " ms/step",
                    flush=True,
                )

    baseline = statistics.median(step_seconds["baseline"])
    results = {
        "backend": backend,
        "jit_compile": bool(model.jit_compile),
        "batch_size": args.batch_size,
        "steps_per_epoch": args.steps_per_epoch,
        "epochs_per_fit": args.epochs,
        "rounds": args.rounds,
        "histograms": args.histograms,
        "model": "bench_convnet (4 conv+BN blocks, 28x28x1, 10 classes)",
        "trainable_parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "trainable_variables": len(model.trainable_variables),
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count()},
        "median_step_ms": {name: 1000 * statistics.median(values) for name, values in step_seconds.items()},
        "step_ms_samples": {name: [1000 * v for v in values] for name, values in step_seconds.items()},
        "overhead": {},
    }
    for name in configurations[1:]:
        overhead = statistics.median(step_seconds[name]) / baseline - 1.0
        target = TARGETS.get(name)
        results["overhead"][f"update_freq={name}"] = {
            "fraction": overhead,
            "target": target,
            "meets_target": None if target is None else overhead <= target,
        }
    return results


def main(argv=None):
    args = parse_args(argv)
    results = run(args)
    print(f"backend={results['backend']} jit_compile={results['jit_compile']} batch={results['batch_size']}")
    print(f"  baseline: {results['median_step_ms']['baseline']:.2f} ms/step (median)")
    for name, entry in results["overhead"].items():
        freq = name.split("=", 1)[1]
        target = "" if entry["target"] is None else f" (target <= {100 * entry['target']:.0f}%)"
        print(
            f"  {name}: {results['median_step_ms'][freq]:.2f} ms/step, "
            f"overhead {100 * entry['fraction']:+.2f}%{target}"
        )
    if args.output:
        from keras_gradattn.utils import atomic_write_json

        atomic_write_json(args.output, results)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
