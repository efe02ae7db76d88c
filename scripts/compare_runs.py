"""How far apart two run directories are: their losses, epoch by epoch, and their best weights.

    KERAS_BACKEND=torch python scripts/compare_runs.py RUN_A RUN_B

Prints one JSON line: the largest relative difference of the training and
validation losses over the epochs both ran, the first epoch's (same initial
weights), and the 99th percentile and maximum of the absolute differences of
the weights in `best.keras`, and, when both runs logged gradient norms
(`logs/gradients`), their largest relative difference. docs/training.md's multi-process parity figures
are this script on the `single` and `group` runs that
tests/training/test_multi_process.py::test_two_processes_train_like_one leaves
in pytest's `--basetemp` folder.
"""

import argparse
import json
import os
import sys

import numpy as np


def compare(run_a, run_b):
    import keras

    import keras_gradattn.models  # noqa: F401  (registers the classes a saved model names)
    from keras_gradattn.callbacks import TrainingJournal

    histories = [TrainingJournal.read_history(os.path.join(run, "history.csv")) for run in (run_a, run_b)]
    rows = list(zip(*histories))

    def relative(key, pairs):
        return max(abs(b[key] - a[key]) / abs(a[key]) for a, b in pairs)

    weights = [
        np.concatenate([np.asarray(w, np.float64).ravel()
                        for w in keras.saving.load_model(os.path.join(run, "best.keras")).get_weights()])
        for run in (run_a, run_b)
    ]  # fmt: skip
    differences = np.abs(weights[0] - weights[1])
    comparison = {
        "epochs": len(rows),
        "first_epoch_loss_relative": relative("loss", rows[:1]),
        "loss_relative_max": relative("loss", rows),
        "val_loss_relative_max": relative("val_loss", rows),
        "weights": int(differences.size),
        "weights_abs_difference_q99": float(np.quantile(differences, 0.99)),
        "weights_abs_difference_max": float(differences.max()),
    }
    gradient_norms = _gradient_norm_difference(run_a, run_b)
    if gradient_norms is not None:
        comparison["gradient_norms_relative_max"] = gradient_norms
    return comparison


def _gradient_norm_difference(run_a, run_b):
    """The largest relative difference of the gradient norms both runs logged
    (every `grad_norm*` tag, at the steps both logged); None without logs."""
    from keras_gradattn.analysis.event_reader import find_event_files
    from keras_gradattn.analysis.event_reader import read_events

    directories = [os.path.join(run, "logs", "gradients") for run in (run_a, run_b)]
    if not all(find_event_files(directory) for directory in directories):
        return None
    logged_a, logged_b = (read_events(directory).scalars for directory in directories)
    largest = 0.0
    for tag in sorted(set(logged_a) & set(logged_b)):
        if not tag.startswith("grad_norm"):
            continue
        values_b = dict(zip(*logged_b[tag]))
        for step, value in zip(*logged_a[tag]):
            if step in values_b and value:
                largest = max(largest, abs(values_b[step] - value) / abs(value))
    return largest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    args = parser.parse_args(argv)
    for run in (args.run_a, args.run_b):
        for name in ("history.csv", "best.keras"):
            if not os.path.isfile(os.path.join(run, name)):
                parser.exit(2, f"{parser.prog}: error: {run!r} is not a finished run directory (no {name}).\n")
    print(json.dumps(compare(args.run_a, args.run_b)))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
