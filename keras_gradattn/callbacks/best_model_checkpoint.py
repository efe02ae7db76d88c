"""The best epoch's model on disk, and restored as the final model in every case.

Keras' `EarlyStopping(restore_best_weights=True)` restores only when it stops
early, not when the last epoch is reached; the reference's early stopping
never restored at all (the reference code's defect 2).
"""

import json
import os

import keras

from keras_gradattn.callbacks.epoch_logs import as_float
from keras_gradattn.callbacks.epoch_logs import finite_or_none
from keras_gradattn.utils import atomic_path
from keras_gradattn.utils import atomic_write_json
from keras_gradattn.utils import trained_classifier


def save_model(model, filepath):
    """`model.save` through a temporary file: readers never see half a file."""
    with atomic_path(filepath) as tmp_path:
        model.save(tmp_path)


class BestModelCheckpoint(keras.callbacks.Callback):
    """Keeps the best epoch's model on disk and restores it when training ends.

    After each epoch whose `monitor` improves on the best so far (strictly;
    `mode="max"` or `"min"`), the whole model is saved to `filepath` (a
    `.keras` file, written atomically) and a small JSON record (epoch, value,
    the epoch's logs) to `record_path`. Epochs with a non-finite loss or
    monitor value never count as best.

    `on_train_end` loads the weights of `filepath` into the model, whether
    training stopped early, ran to its last epoch, or was stopped for a
    non-finite loss: the final model is always the best epoch's. A training
    wrapper (`data.DeviceDataModel`) saves and restores the classifier it
    trains (`trained_classifier`). The record is
    the state: a resumed run continues from it.

    Args:
        filepath: where the best model goes (`.keras`).
        record_path: where the JSON record of the best epoch goes.
        monitor: a key of the epoch logs, e.g. `"val_accuracy"`.
        mode: `"max"` or `"min"`.
        save_fn: `save_fn(model, filepath)` writing the model; defaults to
            an atomic `model.save`. (Data-parallel training passes one that
            keeps the file loadable on every backend.)
    """

    def __init__(self, filepath, record_path, monitor="val_accuracy", mode="max",
                 save_fn=None, verbose=0):  # fmt: skip
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}.")
        self.filepath = os.fspath(filepath)
        self.record_path = os.fspath(record_path)
        self.monitor = monitor
        self.mode = mode
        self.save_fn = save_fn or save_model
        self.verbose = verbose
        self.best = None
        self.best_epoch = None  # 1-based
        self.restored_epoch = None
        self._load_record()

    def _load_record(self):
        if not os.path.exists(self.record_path):
            return
        with open(self.record_path) as file:
            record = json.load(file)
        self.best = record["value"]
        self.best_epoch = record["epoch"]

    def _improves(self, value):
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = finite_or_none(logs.get(self.monitor))
        loss = logs.get("loss")
        if value is None or (loss is not None and finite_or_none(loss) is None):
            return
        if not self._improves(value):
            return
        self.best, self.best_epoch = value, epoch + 1
        self.save_fn(trained_classifier(self.model), self.filepath)
        record = {
            "epoch": self.best_epoch,
            "monitor": self.monitor,
            "mode": self.mode,
            "value": value,
            "logs": {key: finite_or_none(as_float(item)) for key, item in logs.items()},
        }
        atomic_write_json(self.record_path, record)
        if self.verbose:
            print(
                f"Epoch {self.best_epoch}: {self.monitor} improved to {value:.5f}; "
                f"saved {self.filepath}",
                flush=True,
            )

    def on_train_end(self, logs=None):
        if not os.path.exists(self.filepath):
            return
        trained_classifier(self.model).load_weights(self.filepath)
        self.restored_epoch = self.best_epoch
        if self.verbose:
            print(
                f"Restored the weights of the best epoch ({self.best_epoch}, "
                f"{self.monitor} {self.best:.5f}).",
                flush=True,
            )
