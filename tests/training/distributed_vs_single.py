"""Trains the same tiny run on one device and data-parallel on two; prints JSON.

Run by test_distribution.py in a subprocess, because the simulated devices
must exist before the backend starts:
    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 python distributed_vs_single.py DIR
    KERAS_BACKEND=tensorflow python distributed_vs_single.py DIR     (2 logical CPUs, set here)
An optional second argument, `device`, runs the data-parallel side on the
device data path (`--data-placement device`) against the host pipeline on
one device. Both runs use the CLI (`main`) with the same flags and global batch; the JSON
line holds the largest differences of loss, metrics, final weights and
logged gradient norms.
"""

import json
import os
import sys

import keras

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from keras_gradattn.cli.train import main  # noqa: E402
from keras_gradattn.analysis.event_reader import read_events  # noqa: E402
from keras_gradattn.callbacks import TrainingJournal  # noqa: E402

# ResNet-18 layout without dropout (dropout masks depend on the sharding) and
# with BatchNorm, whose statistics must be the global batch's on both sides.
# One batch per epoch: the loss and gradients of a batch do not depend on the
# order of its examples, while the order itself may differ (TensorFlow's
# distributed iterator draws its own reshuffle of the seeded tf.data shuffle).
RUN = [
    "--dataset", "digits", "--model", "resnet18", "--epochs", "3", "--max-train-samples", "64",
    "--batch-size", "64", "--quiet",
    # TensorFlow: graph mode without XLA (quicker to build); JAX keeps jit.
    "--jit-compile", "off" if keras.backend.backend() == "tensorflow" else "auto",
    "--model-arg", "stage_widths=(8, 16, 16, 32)", "--model-arg", "stem_width=8",
    "--model-arg", "stage_blocks=(1, 1, 1, 1)", "--log-gradients", "1",
]  # fmt: skip


def run(directory, distribute, placement="host"):
    output = os.path.join(directory, "distributed" if distribute else "single")
    flags = ["--distribute", "--data-placement", placement] if distribute else ["--data-placement", "host"]
    code = main(RUN + ["--output-dir", output] + flags)
    assert code == 0, code
    with open(os.path.join(output, "config.json")) as file:
        replicas = json.load(file)["distribution"]["num_replicas"]
    with open(os.path.join(output, "metrics.json")) as file:
        metrics = json.load(file)
    weights = keras.saving.load_model(os.path.join(output, "best.keras")).get_weights()
    gradient_norms = {
        tag: values
        for tag, (_, values) in read_events(os.path.join(output, "logs", "gradients")).scalars.items()
        if tag.startswith("grad_norm")
    }
    history = TrainingJournal.read_history(os.path.join(output, "history.csv"))
    return replicas, history, metrics, weights, gradient_norms


def main_(directory, placement="host"):
    single_replicas, single_history, single_metrics, single_weights, single_norms = run(directory, False)
    replicas, history, metrics, weights, norms = run(directory, True, placement)
    print(json.dumps({
        "replicas": [single_replicas, replicas],
        "loss": max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(single_history, history)),
        "val_loss": max(abs(a["val_loss"] - b["val_loss"]) for a, b in zip(single_history, history)),
        "val_accuracy": max(abs(a["val_accuracy"] - b["val_accuracy"]) for a, b in zip(single_history, history)),
        "test_nll": abs(single_metrics["nll"] - metrics["nll"]),
        "test_top1": abs(single_metrics["top1_accuracy"] - metrics["top1_accuracy"]),
        "test_examples": [single_metrics["num_examples"], metrics["num_examples"]],
        "weights": max(float(np.max(np.abs(a - b))) for a, b in zip(single_weights, weights)),
        "epochs": [len(single_history), len(history)],
        # The gradient-norm recorder on both sides: the same tags, and the
        # norms of each step's applied (global batch) gradients.
        "gradient_norm_tags": [len(single_norms), sorted(single_norms) == sorted(norms)],
        "gradient_norms": max(
            float(np.max(np.abs(np.asarray(norms[tag]) - values) / np.abs(values)))
            for tag, values in single_norms.items()
        ),
    }))  # fmt: skip


if __name__ == "__main__":
    main_(*sys.argv[1:])
