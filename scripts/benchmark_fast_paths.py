#!/usr/bin/env python
"""Training images/s with the backend's fast layer kernels against Keras' portable ones.

    KERAS_BACKEND=torch python scripts/benchmark_fast_paths.py --rounds 7 --steps 3

One process; per architecture, two models with the same initial weights, one
traced and run with the fast path, one with `GRADATTN_PORTABLE_LAYERS=1`
(set or cleared around every call, so that a compiled step is traced under
its own setting). Each round trains `--steps` batches through `fit` with
each, so both share the data and the machine's load of that moment. Prints
the median images/s of each, the ratio per round (median, min-max) and PASS
when the median ratio is at least `--target`; writes `<output>.md` and
`<output>.json`.
"""

import argparse
import os
import statistics
import sys

# Runs from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,gradattn_learned_pe", help="comma-separated model names")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed call (default 3)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--target", type=float, default=1.0, help="fast / portable median ratio to PASS")
    parser.add_argument("--output", default=None, help="path without extension for the .md and .json reports")
    args = parser.parse_args(argv)
    for name, value in (("--rounds", args.rounds), ("--steps", args.steps), ("--batch-size", args.batch_size)):
        if value < 1:
            parser.error(f"{name} must be a positive integer; received {value}")

    import keras

    from keras_gradattn import backend
    from keras_gradattn import create_model
    from keras_gradattn.benchmarks.environment import describe_environment
    from keras_gradattn.benchmarks.timing import measure_interleaved
    from keras_gradattn.benchmarks.timing import synthetic_batch
    from keras_gradattn.benchmarks.timing import training_function
    from keras_gradattn.models import list_models
    from keras_gradattn.utils.io import atomic_write_json
    from keras_gradattn.utils.io import atomic_write_text

    models = args.models.split(",")
    unknown = [name for name in models if name not in list_models()]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; allowed: {', '.join(list_models())}")
    output = args.output or os.path.join("results", "benchmarks", f"fast_paths_{keras.backend.backend()}_cpu")

    def with_layers(portable, function):
        # Set or cleared for every call: a variable set before the script
        # started must not turn the fast contender portable. Its own value
        # is back after the call.
        def call():
            before = os.environ.get(backend.PORTABLE_LAYERS_VARIABLE)
            if portable:
                os.environ[backend.PORTABLE_LAYERS_VARIABLE] = "1"
            else:
                os.environ.pop(backend.PORTABLE_LAYERS_VARIABLE, None)
            try:
                result = function()
                # call_seconds times a training call up to its on_train_end.
                call.last_train_end = getattr(function, "last_train_end", None)
                return result
            finally:
                if before is None:
                    os.environ.pop(backend.PORTABLE_LAYERS_VARIABLE, None)
                else:
                    os.environ[backend.PORTABLE_LAYERS_VARIABLE] = before

        return call

    images, labels = synthetic_batch(args.batch_size, (28, 28, 1), 10)
    rows = []
    for name in models:
        functions = {}
        for contender, portable in (("fast", False), ("portable", True)):
            # One model each, with the same initial weights: a backend that
            # traces the step (TensorFlow, JAX) reads the setting once, at the
            # warm-up call, so a shared model would keep the first setting.
            # (Only PyTorch has a fast path today; elsewhere the two match.)
            keras.utils.set_random_seed(0)
            model = create_model(name, num_classes=10, input_shape=(28, 28, 1))
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            functions[contender] = with_layers(portable, training_function(model, images, labels, args.steps))
        measured = measure_interleaved(
            functions, args.batch_size * args.steps, rounds=args.rounds,
            progress=lambda line, name=name: print(f"{name}: {line}", file=sys.stderr, flush=True),
        )  # fmt: skip
        ratios = [p / f for f, p in zip(measured["fast"].call_times, measured["portable"].call_times)]
        median = statistics.median(ratios)
        rows.append({
            "model": name,
            "fast_images_per_second": measured["fast"].images_per_second,
            "portable_images_per_second": measured["portable"].images_per_second,
            "ratio_median": median, "ratio_min": min(ratios), "ratio_max": max(ratios),
            "verdict": "PASS" if median >= args.target else "MISS",
        })  # fmt: skip
    command = "KERAS_BACKEND={} python scripts/benchmark_fast_paths.py {}".format(
        keras.backend.backend(), " ".join(argv if argv is not None else sys.argv[1:])
    ).rstrip()
    lines = [
        f"# Fast layer kernels against Keras' portable ones ({keras.backend.backend()} backend)",
        "",
        f"Command: `{command}`. Batch {args.batch_size}, 28x28x1, float32, {args.steps} steps per timed "
        f"`fit` call, {args.rounds} interleaved rounds; ratio = fast / portable images/s, round by round.",
        "",
        "| model | fast img/s | portable img/s | ratio, median (min-max) | >= {:.2f}x |".format(args.target),
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        lines.append(
            f"| `{row['model']}` | {row['fast_images_per_second']:.0f} | {row['portable_images_per_second']:.0f} | "
            f"{row['ratio_median']:.2f}x ({row['ratio_min']:.2f}-{row['ratio_max']:.2f}) | {row['verdict']} |"
        )
    environment = describe_environment()
    lines += ["", f"Machine: {environment['processor']}, {environment['cpu_count']} cores; "
              f"load average at the end {os.getloadavg()[0]:.1f}.", ""]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    atomic_write_json(output + ".json", {"command": command, "rows": rows, "environment": environment})
    atomic_write_text(output + ".md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
