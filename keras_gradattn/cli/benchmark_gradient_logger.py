"""Step-time overhead of GradientNormLogger, measured in one run.

For the backend chosen by KERAS_BACKEND, one model and one in-memory data set
are trained in rounds: in each round one fit without the callback, one with it
at `update_freq=100` and one with it at every step (the order rotates from
round to round). Each fit runs a few epochs of a fixed number of steps; its
first epoch (tracing/compilation and warm-up) is dropped and the step time of
every other epoch is its wall time divided by its steps. Epoch times include
everything the callback does (its reads at batch begin, its epoch-end work and
the writer flush).

Two overhead figures are reported for each configuration:
- `median`: median step time with the callback over the median without, minus
  one, over all timed epochs;
- `paired_median`: the median over rounds of (median with / median without in
  the same round) minus one. Fits of one round run minutes apart at most, so
  on a machine shared with other jobs this figure is the less disturbed one.
Process CPU time (all threads) is recorded beside wall time, with the load
average before and after, to show how busy the machine was.

    KERAS_BACKEND=jax python scripts/benchmark_gradient_logger.py --output results/gradient_logger_jax.json
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

from keras_gradattn.cli.keras_backend import choose_keras_backend

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
        "--steps-per-epoch", type=int, default=50, help="steps per timed epoch (default 50)"
    )
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per fit; the first is warm-up and dropped (default 3)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds over the configurations (default 5)"
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
    parser.add_argument(
        "--filters", default="16,32", help="conv filters of the two stages (default '16,32')"
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
    try:
        args.filters = tuple(int(value) for value in args.filters.split(","))
    except ValueError:
        parser.error(f"--filters must be two comma-separated integers; received {args.filters!r}")
    if len(args.filters) != 2 or min(args.filters) <= 0:
        parser.error(f"--filters must be two positive integers; received {args.filters}")
    if any(value <= 0 for value in args.update_freqs):
        parser.error(f"--update-freqs must be positive; received {args.update_freqs}")
    return args


def build_conv_net(seed, filters=(16, 32)):
    """A small conv net for 28x28x1 inputs: 4 conv+BN blocks in two stages, a head."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for stage, stage_filters in zip(("stage1", "stage2"), filters):
        for block in ("block1", "block2"):
            x = layers.Conv2D(stage_filters, 3, padding="same", use_bias=False, name=f"{stage}_{block}_conv")(x)
            x = layers.BatchNormalization(name=f"{stage}_{block}_bn")(x)
            x = layers.ReLU(name=f"{stage}_{block}_relu")(x)
        x = layers.MaxPooling2D(name=f"{stage}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(128, activation="relu", name="fc")(x)
    x = layers.Dropout(0.1, name="dropout")(x)
    outputs = layers.Dense(10, name="head")(x)
    return keras.Model(inputs, outputs, name="bench_convnet")


class EpochTimer:
    """Wall and process CPU time of each epoch, from on_epoch_begin to on_epoch_end."""

    def __init__(self):
        import keras

        timer = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                timer._start = (time.perf_counter(), time.process_time())

            def on_epoch_end(self, epoch, logs=None):
                wall, cpu = timer._start
                timer.seconds.append(time.perf_counter() - wall)
                timer.cpu_seconds.append(time.process_time() - cpu)

        self.seconds = []
        self.cpu_seconds = []
        self.callback = _Callback()


def _time_log_steps(logger, seconds):
    """Times each log step of `logger`, after the queued train steps finish.

    Backends dispatch steps ahead of the device; the callback's first read
    waits for them. That wait is not the callback's cost, so the timer starts
    once the optimizer's iteration count (written by the last step) is read.
    """
    from keras import ops

    log_window = logger._log_window

    def timed(step):
        ops.convert_to_numpy(logger.model.optimizer.iterations)
        start = time.perf_counter()
        log_window(step)
        seconds.append(time.perf_counter() - start)

    logger._log_window = timed


def run(args):
    import keras
    import numpy as np

    from keras_gradattn.callbacks import GradientNormLogger
    from keras_gradattn.utils import describe_machine

    backend = keras.backend.backend()
    rng = np.random.default_rng(args.seed)
    num_examples = args.batch_size * args.steps_per_epoch
    x = rng.normal(size=(num_examples, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, size=(num_examples,)).astype("int32")

    model = build_conv_net(args.seed, args.filters)
    jit_compile = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    configurations = ["baseline"] + [str(freq) for freq in args.update_freqs]
    # samples[name][round] = list of (wall seconds, CPU seconds) per step
    samples = {name: [[] for _ in range(args.rounds)] for name in configurations}
    log_seconds = {name: [] for name in configurations[1:]}  # one entry per log step
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="gradient_logger_bench_") as log_root:
        for round_index in range(args.rounds):
            shift = round_index % len(configurations)
            for name in configurations[shift:] + configurations[:shift]:
                timer = EpochTimer()
                callbacks = [timer.callback]
                if name != "baseline":
                    log_dir = os.path.join(log_root, f"{name}_{round_index}")
                    logger = GradientNormLogger(log_dir, update_freq=int(name), histograms=args.histograms)
                    _time_log_steps(logger, log_seconds[name])
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
                per_step = [
                    (wall / args.steps_per_epoch, cpu / args.steps_per_epoch)
                    for wall, cpu in zip(timer.seconds[1:], timer.cpu_seconds[1:])
                ]
                samples[name][round_index] = per_step
                print(
                    f"round {round_index + 1}/{args.rounds} {name:>8}: "
                    + ", ".join(f"{1000 * wall:.2f}" for wall, _ in per_step)
                    + " ms/step",
                    flush=True,
                )
    load_after = os.getloadavg()
    machine = describe_machine()

    def median_of(name, clock, round_index=None):
        rounds = samples[name] if round_index is None else [samples[name][round_index]]
        return statistics.median(sample[clock] for per_round in rounds for sample in per_round)

    results = {
        "backend": backend,
        "jit_compile": bool(model.jit_compile),
        "batch_size": args.batch_size,
        "steps_per_epoch": args.steps_per_epoch,
        "epochs_per_fit": args.epochs,
        "rounds": args.rounds,
        "histograms": args.histograms,
        "model": f"bench_convnet (4 conv+BN blocks, filters {args.filters}, 28x28x1, 10 classes)",
        "trainable_parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "trainable_variables": len(model.trainable_variables),
        "machine": {
            # Keys as in the committed results/gradient_logger_overhead files.
            "platform": machine["platform"],
            "python": sys.version.split()[0],
            "cpus": machine["cpu_count"],
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "median_step_ms": {name: 1000 * median_of(name, 0) for name in configurations},
        "median_step_cpu_ms": {name: 1000 * median_of(name, 1) for name in configurations},
        "step_ms_samples": {
            name: [[1000 * wall for wall, _ in per_round] for per_round in rounds] for name, rounds in samples.items()
        },
        # Wall time of one log step (read the window and the learning rate,
        # write the events), after the queued steps finished: included in
        # the step times above, shown apart because it is the part that
        # grows with 1 / update_freq.
        "log_step_ms": {name: 1000 * statistics.median(values) for name, values in log_seconds.items() if values},
        "overhead": {},
    }
    for name in configurations[1:]:
        entry = {"target": TARGETS.get(name)}
        for clock, label in ((0, "wall"), (1, "cpu")):
            paired = [median_of(name, clock, r) / median_of("baseline", clock, r) for r in range(args.rounds)]
            entry[f"{label}_median"] = median_of(name, clock) / median_of("baseline", clock) - 1.0
            entry[f"{label}_paired_median"] = statistics.median(paired) - 1.0
            entry[f"{label}_paired_per_round"] = [ratio - 1.0 for ratio in paired]
        if entry["target"] is not None:
            entry["meets_target"] = entry["wall_paired_median"] <= entry["target"]
        results["overhead"][f"update_freq={name}"] = entry
    return results


def main(argv=None):
    args = parse_args(argv)
    choose_keras_backend()
    results = run(args)
    print(
        f"backend={results['backend']} jit_compile={results['jit_compile']} batch={results['batch_size']} "
        f"load average {results['machine']['load_average_before'][0]:.1f} -> {results['machine']['load_average_after'][0]:.1f}"
    )
    print(
        f"  baseline: {results['median_step_ms']['baseline']:.2f} ms/step wall, "
        f"{results['median_step_cpu_ms']['baseline']:.2f} ms/step CPU (medians)"
    )
    for name, entry in results["overhead"].items():
        freq = name.split("=", 1)[1]
        if freq in results["log_step_ms"]:
            print(f"  one log step at update_freq={freq}: {results['log_step_ms'][freq]:.2f} ms (median)")
        target = "" if entry["target"] is None else f", target <= {100 * entry['target']:.0f}%"
        print(
            f"  {name}: {results['median_step_ms'][freq]:.2f} ms/step; overhead wall "
            f"{100 * entry['wall_median']:+.2f}% (paired {100 * entry['wall_paired_median']:+.2f}%), CPU "
            f"{100 * entry['cpu_median']:+.2f}% (paired {100 * entry['cpu_paired_median']:+.2f}%){target}"
        )
    if args.output:
        from keras_gradattn.utils import atomic_write_json

        atomic_write_json(args.output, results)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
