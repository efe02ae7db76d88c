"""How far apart two run directories are: their losses, epoch by epoch, and their best weights.

    KERAS_BACKEND=torch python scripts/compare_runs.py RUN_A RUN_B

Prints one JSON line: the largest relative difference of the training and
validation losses over the epochs both ran, the first epoch's (same initial
weights), and the 99th percentile and maximum of the absolute differences of
the weights in `best.keras`. docs/training.md's multi-process parity figures
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
    return {
        "epochs": len(rows),
        "first_epoch_loss_relative": relative("loss", rows[:1]),
        "loss_relative_max": relative("loss", rows),
        "val_loss_relative_max": relative("val_loss", rows),
        "weights": int(differences.size),
        "weights_abs_difference_q99": float(np.quantile(differences, 0.99)),
        "weights_abs_difference_max": float(differences.max()),
    }


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
