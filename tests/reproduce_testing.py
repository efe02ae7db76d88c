"""Fabricated run directories: what gradattn-train writes, reduced to what the
grid and the tables read, so the tests need no training."""

import json
import os


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        json.dump(value, file)


def fake_run(folder, dataset="digits", model="resnet18", seed=42, backend="jax", top1=0.9,
             status="finished", epochs=5, max_train_samples=None, train_size=1258, batch_size=128,
             model_args=None, epochs_run=5, time_per_epoch=2.0, health_score=1.0, decay=1.1):
    """Writes config.json, status.json and (when finished) metrics.json into `folder`."""
    write_json(os.path.join(folder, "config.json"), {
        "train_config": {
            "dataset": dataset, "model": model, "seed": seed, "backend": backend, "epochs": epochs,
            "max_train_samples": max_train_samples, "batch_size": batch_size,
            "model_args": model_args or {},
        },
        "backend": backend,
        "dataset": {"sizes": {"train": train_size, "validation": 270, "test": 269}},
        "model": {"trainable_parameters": 1000},
        "git": {"commit": "abc"},
    })  # fmt: skip
    write_json(os.path.join(folder, "status.json"), {"status": status, "attempts": [{}]})
    if status == "finished":
        write_json(os.path.join(folder, "metrics.json"), {
            "top1_accuracy": top1, "top3_accuracy": min(1.0, top1 + 0.05), "f1_macro": top1 - 0.01,
            "ece": 0.02, "nll": 0.3, "training_time_s": time_per_epoch * epochs_run,
            "time_per_epoch_s": time_per_epoch, "epochs_run": epochs_run, "best_epoch": epochs_run - 1,
            "stopped_early": epochs_run < epochs, "trainable_parameters": 1000,
            "gradient_flow": {"health_score": health_score, "average_decay_rate": decay,
                              "bottleneck_layers": 1, "vanishing_layers": 0, "exploding_layers": 0,
                              "num_layers": 20},
        })  # fmt: skip
