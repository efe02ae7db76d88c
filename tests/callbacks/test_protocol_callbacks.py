"""The protocol's callbacks on a tiny Dense model (milliseconds per epoch).

The scenario: a model that is perfect after epoch 1 and then sabotaged, so its
validation accuracy falls and never recovers. The final model must be the
epoch-1 model, whether training stops early or runs to its last epoch.
"""

import csv

import keras
import numpy as np
import pytest

from keras_gradattn.training import protocol
from keras_gradattn.training.run_directory import RunFiles
from keras_gradattn.callbacks import BestModelCheckpoint
from keras_gradattn.callbacks import DivergenceMonitor
from keras_gradattn.callbacks import TrainingJournal

NUM_FEATURES = 4


def separable_data(count=64, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(count, NUM_FEATURES)).astype("float32")
    # A margin around the decision boundary: small updates cannot flip labels.
    features[:, 0] += np.sign(features[:, 0])
    return features, (features[:, 0] > 0).astype("int32")


def perfect_model():
    """Dense logits `[-x0, x0]`: 100% accurate on `separable_data`."""
    model = keras.Sequential([keras.Input((NUM_FEATURES,)), keras.layers.Dense(2, name="logits")])
    kernel = np.zeros((NUM_FEATURES, 2), "float32")
    kernel[0] = [-1.0, 1.0]
    model.get_layer("logits").set_weights([kernel, np.zeros(2, "float32")])
    model.compile(
        optimizer=protocol.build_optimizer(learning_rate=1e-3, weight_decay=0.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        run_eagerly=keras.backend.backend() == "tensorflow",
    )
    return model


class Sabotage(keras.callbacks.Callback):
    """Negates the kernel before epoch index 1: accuracy falls to ~0."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            layer = self.model.get_layer("logits")
            kernel, bias = layer.get_weights()
            layer.set_weights([-kernel, bias])


class WeightsRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.per_epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.per_epoch.append([np.array(w) for w in self.model.get_weights()])


def train(tmp_path, epochs, extra_callbacks=()):
    files = RunFiles(tmp_path / "run")
    built = protocol.build_callbacks(files)
    recorder = WeightsRecorder()
    model = perfect_model()
    x, y = separable_data()
    model.fit(
        x, y, validation_data=separable_data(seed=1), epochs=epochs, batch_size=16, verbose=0,
        shuffle=False,  # so that an interrupted run can repeat the same batches
        callbacks=[Sabotage(), *extra_callbacks, *built.callbacks, recorder],
    )  # fmt: skip
    return model, built, recorder, TrainingJournal.read_history(files.history), files


def assert_same_weights(actual, expected):
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=0, atol=0)


def test_best_weights_restored_when_the_last_epoch_is_reached(tmp_path):
    # 4 epochs < patience 7: Keras' EarlyStopping(restore_best_weights=True)
    # would keep the last epoch's weights here.
    model, built, recorder, history, _ = train(tmp_path, epochs=4)
    assert len(history) == 4
    accuracies = [row["val_accuracy"] for row in history]
    assert accuracies[0] == 1.0 and max(accuracies[1:]) < 0.2
    assert built.best.best_epoch == 1 and built.best.restored_epoch == 1
    assert_same_weights(model.get_weights(), recorder.per_epoch[0])
    assert not np.allclose(recorder.per_epoch[-1][0], recorder.per_epoch[0][0])


def test_early_stopping_stops_after_patience_and_restores_best(tmp_path):
    model, built, recorder, history, files = train(tmp_path, epochs=30)
    # Best at epoch 1, then 7 epochs without improvement: stop after epoch 8.
    assert [row["epoch"] for row in history] == list(range(1, 9))
    assert built.early_stopping.stopped_epoch == 7  # Keras' 0-based index
    assert_same_weights(model.get_weights(), recorder.per_epoch[0])
    restored = keras.saving.load_model(files.best_model)
    assert_same_weights(restored.get_weights(), recorder.per_epoch[0])


def test_reduce_lr_on_plateau_follows_the_protocol(tmp_path):
    model, _, _, history, _ = train(tmp_path, epochs=30)
    # Learning rate during each epoch (logged before that epoch's decision):
    # 3 non-improving epochs (2, 3, 4) -> x0.2 after epoch 4, again after 7.
    expected = [1e-3] * 4 + [2e-4] * 3 + [4e-5]
    np.testing.assert_allclose([row["learning_rate"] for row in history], expected, rtol=1e-5)
    # The restored model is the whole best-epoch checkpoint, optimizer included.
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-3)


class Interrupt(keras.callbacks.Callback):
    """Raises after epoch `stop_after` (1-based) has been fully recorded."""

    def __init__(self, stop_after):
        super().__init__()
        self.stop_after = stop_after

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.stop_after:
            raise KeyboardInterrupt


def test_resumed_run_has_every_epoch_once_and_keeps_its_counters(tmp_path):
    uninterrupted = train(tmp_path / "a", epochs=30)[3]

    class InterruptLast(Interrupt):
        pass

    with pytest.raises(KeyboardInterrupt):
        # Placed last, after BackupAndRestore: the interruption hits after
        # epoch 5's backup, in the middle of the ReduceLROnPlateau and
        # early-stopping counters.
        files = RunFiles(tmp_path / "b" / "run")
        built = protocol.build_callbacks(files)
        model = perfect_model()
        model.fit(*separable_data(), validation_data=separable_data(seed=1), epochs=30,
                  batch_size=16, verbose=0, shuffle=False,
                  callbacks=[Sabotage(), *built.callbacks, InterruptLast(5)])  # fmt: skip
    # A row beyond the backup, as if killed between the journal and the backup.
    rows = TrainingJournal.read_history(files.history)
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4, 5]
    with open(files.history, "a", newline="") as file:
        csv.writer(file).writerow([6] + [0.5] * (len(rows[0]) - 1))

    _, built, _, history, _ = train(tmp_path / "b", epochs=30)
    assert [row["epoch"] for row in history] == list(range(1, 9))
    for before, after in zip(uninterrupted, history):
        for key in ("val_accuracy", "learning_rate", "loss"):
            assert after[key] == pytest.approx(before[key], rel=1e-5)
    assert built.best.best_epoch == 1
    assert built.early_stopping.stopped_epoch == 7


def test_divergence_is_recorded_and_never_checkpointed(tmp_path):
    files = RunFiles(tmp_path)
    best = BestModelCheckpoint(files.best_model, files.best_record)
    monitor = DivergenceMonitor()
    model = perfect_model()
    x, y = separable_data()
    x[20] = np.nan
    model.fit(x, y, validation_data=separable_data(seed=1), epochs=3, batch_size=16, verbose=0,
              callbacks=[monitor, best])  # fmt: skip
    assert monitor.diverged["epoch"] == 1 and 0 <= monitor.diverged["batch"] < 4
    assert "nan" in monitor.diverged["loss"]
    assert best.best_epoch is None
    assert not (tmp_path / "best.keras").exists()


def test_divergence_monitor_builds_on_keras_without_raise_error(monkeypatch):
    # Keras 3.10's TerminateOnNaN.__init__ takes no arguments (raise_error came
    # in a later release); the monitor must build there too, and still stop
    # training gracefully.
    def init_without_arguments(self):
        keras.callbacks.Callback.__init__(self)

    monkeypatch.setattr(keras.callbacks.TerminateOnNaN, "__init__", init_without_arguments)
    monitor = DivergenceMonitor()
    assert monitor.diverged is None
    assert not getattr(monitor, "raise_error", False)
