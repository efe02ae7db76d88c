"""Callbacks of the paper's protocol that survive an interrupted run.

- `ResumableEarlyStopping` and `ResumableReduceLROnPlateau` expose their
  counters (`get_state` / `set_state`), which `keras.callbacks.BackupAndRestore`
  does not save: without them a resumed run would restart its patience.
- `TrainingJournal` writes `history.csv` (one row per epoch, rewritten
  atomically) and the callbacks' per-epoch states; when a run resumes it drops
  rows of epochs that are being re-run and restores the states, so the final
  history has every epoch exactly once.

Epochs in files and messages are 1-based, as Keras prints them
("Epoch 3/10"); Keras passes 0-based indices to callbacks.
"""

import csv
import io
import json
import os
import time

import keras

from keras_gradattn.callbacks.epoch_logs import as_float
from keras_gradattn.callbacks.epoch_logs import finite_or_none
from keras_gradattn.utils import atomic_write_json
from keras_gradattn.utils import atomic_write_text


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` whose counters can be saved and restored.

    It only decides when to stop: restoring the best weights is
    `BestModelCheckpoint`'s job (`restore_best_weights` is refused here, as it
    would only restore when stopping early).
    """

    def __init__(self, **kwargs):
        if kwargs.get("restore_best_weights"):
            raise ValueError(
                "ResumableEarlyStopping does not restore weights; use "
                "BestModelCheckpoint, which restores them in every case."
            )
        super().__init__(**kwargs)

    def get_state(self):
        return {
            "wait": int(self.wait),
            "best": finite_or_none(self.best),
            "best_epoch": int(self.best_epoch),
            "stopped_epoch": int(self.stopped_epoch),
        }

    def set_state(self, state):
        self.wait = state["wait"]
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.stopped_epoch = state["stopped_epoch"]


class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """`keras.callbacks.ReduceLROnPlateau` whose counters can be saved and
    restored. The learning rate itself is an optimizer variable, which
    `BackupAndRestore` already saves."""

    def get_state(self):
        return {
            "wait": int(self.wait),
            "best": finite_or_none(self.best),
            "cooldown_counter": int(self.cooldown_counter),
        }

    def set_state(self, state):
        self.wait = state["wait"]
        self.cooldown_counter = state["cooldown_counter"]
        if state["best"] is not None:
            self.best = state["best"]


class TrainingJournal(keras.callbacks.Callback):
    """`history.csv` and the per-epoch callback states, correct across resumes.

    At the end of every epoch it appends the epoch's logs (plus
    `epoch_seconds`) to `history.csv` and a snapshot of each stateful
    callback's `get_state()` to `state_path`; both files are rewritten
    atomically. Place it AFTER the callbacks it snapshots and BEFORE
    `BackupAndRestore` in the callback list: then whenever the backup says an
    epoch finished, its row and states are on disk too.

    At the first `on_epoch_begin` of a `fit` call (epoch `e`, 0-based; `e > 0`
    when `BackupAndRestore` resumed a run), rows and states of epochs `>= e`
    are dropped (they belong to an epoch that is being re-run) and the states
    saved after epoch `e - 1` are restored.

    Args:
        history_path: the CSV file. Column `epoch` is 1-based.
        state_path: the JSON file of per-epoch states.
        stateful_callbacks: `{name: callback}` with `get_state`/`set_state`.
    """

    def __init__(self, history_path, state_path, stateful_callbacks=None):
        super().__init__()
        self.history_path = os.fspath(history_path)
        self.state_path = os.fspath(state_path)
        self.stateful_callbacks = dict(stateful_callbacks or {})
        self.rows = []
        self.states = {}
        self._started = False
        self._epoch_start = None

    # --- reading what an earlier (interrupted) run left ---
    @staticmethod
    def read_history(path):
        """Rows of a history CSV as dicts of floats (`epoch` as int)."""
        if not os.path.exists(path):
            return []
        with open(path, newline="") as file:
            rows = []
            for row in csv.DictReader(file):
                parsed = {}
                for key, value in row.items():
                    if key == "epoch":
                        parsed[key] = int(value)
                    elif value not in ("", None):
                        parsed[key] = float(value)
                rows.append(parsed)
        return rows

    def _resume(self, first_epoch):
        rows = [row for row in self.read_history(self.history_path) if row["epoch"] <= first_epoch]
        states = {}
        if os.path.exists(self.state_path):
            with open(self.state_path) as file:
                states = json.load(file).get("epochs", {})
        states = {key: value for key, value in states.items() if int(key) <= first_epoch}
        if first_epoch > 0:
            missing = sorted(set(range(1, first_epoch + 1)) - {row["epoch"] for row in rows})
            if missing or str(first_epoch) not in states:
                raise RuntimeError(
                    f"Cannot resume at epoch {first_epoch + 1}: {self.history_path} or "
                    f"{self.state_path} lacks epoch(s) {missing or [first_epoch]}."
                )
            for name, callback in self.stateful_callbacks.items():
                callback.set_state(states[str(first_epoch)][name])
        self.rows, self.states = rows, states
        self._write()

    # --- Keras hooks ---
    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:
            self._started = True
            self._resume(epoch)
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        for key, value in (logs or {}).items():
            row[key] = as_float(value)
        row["epoch_seconds"] = time.perf_counter() - self._epoch_start
        self.rows.append(row)
        self.states[str(epoch + 1)] = {
            name: callback.get_state() for name, callback in self.stateful_callbacks.items()
        }
        self._write()

    def _write(self):
        columns = ["epoch"]
        for row in self.rows:
            columns += [key for key in row if key not in columns]
        columns = ["epoch"] + sorted(set(columns) - {"epoch", "epoch_seconds"}) + (
            ["epoch_seconds"] if "epoch_seconds" in columns else []
        )
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({key: _format(row.get(key)) for key in columns})
        atomic_write_text(self.history_path, buffer.getvalue())
        atomic_write_json(self.state_path, {"epochs": self.states})


def _format(value):
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return repr(float(value))
