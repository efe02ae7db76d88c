"""The paper's training protocol: its numbers, its optimizer, its callbacks.

docs/paper.md#training-protocol: Adam, learning rate 1e-3, weight decay 1e-4
as coupled L2, batch 128 (64 for PAD-UFES-20), at most 100 epochs,
ReduceLROnPlateau on validation accuracy (factor 0.2, patience 3, min lr
1e-7), early stopping on validation accuracy (patience 7) restoring the best
weights, seed 42. Done right: the best weights really are restored (defect 2).
"""

import dataclasses
import math

import keras

from keras_gradattn import callbacks as callbacks_lib
from keras_gradattn.optimizers import AdamL2
from keras_gradattn.utils.dependencies import module_available

MONITOR = "val_accuracy"
MONITOR_MODE = "max"
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
MAX_EPOCHS = 100
BATCH_SIZE = 128
# Datasets whose batch differs from BATCH_SIZE in the reference.
BATCH_SIZES = {"pad_ufes_20": 64}
LR_FACTOR = 0.2
LR_PATIENCE = 3
MIN_LR = 1e-7
EARLY_STOPPING_PATIENCE = 7
SEED = 42
# Per-layer gradient norms are logged about this many times an epoch, every
# N steps with N within these bounds (`auto_gradient_log_freq`); the probe
# after training reads this many validation batches (the paper's analysis
# used 20).
GRADIENT_LOGS_PER_EPOCH = 10
GRADIENT_LOG_FREQ_BOUNDS = (10, 100)
PROBE_BATCHES = 20


def auto_gradient_log_freq(steps_per_epoch):
    """Steps between two gradient-norm logs for `--log-gradients auto`:
    `ceil(steps_per_epoch / 10)` within 10 and 100.

    About ten points an epoch, so that a run of a few epochs draws a curve
    (10 steps an epoch: one point each epoch, not one every ten epochs as at
    a fixed 100). Never below 10 steps: a log step (reading the norms,
    writing a few dozen scalars) costs about 1 ms on the CPU, at most 0.1 ms
    a step when spread over 10 steps, against CPU steps of 50 to 120 ms
    (docs/gradient_flow.md); and at most 100, the spacing measured within
    the 2% budget, so that long epochs are not read more often than needed.
    """
    low, high = GRADIENT_LOG_FREQ_BOUNDS
    return min(max(math.ceil(steps_per_epoch / GRADIENT_LOGS_PER_EPOCH), low), high)


def paper_batch_size(dataset):
    """The reference's batch size for `dataset` (128; 64 for PAD-UFES-20)."""
    return BATCH_SIZES.get(dataset, BATCH_SIZE)


def build_optimizer(learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY, decoupled=False):
    """The paper's Adam with coupled L2 (`AdamL2`), or AdamW when `decoupled`."""
    if decoupled:
        return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    return AdamL2(learning_rate=learning_rate, l2=weight_decay)


def describe_protocol():
    """The callback settings, for config.json."""
    return {
        "monitor": MONITOR,
        "mode": MONITOR_MODE,
        "reduce_lr_on_plateau": {"factor": LR_FACTOR, "patience": LR_PATIENCE, "min_lr": MIN_LR},
        "early_stopping": {"patience": EARLY_STOPPING_PATIENCE, "restores_best_weights": "always"},
        "tensorboard_logs": tensorboard_available(),
    }


def tensorboard_available():
    """Keras' TensorBoard callback writes with `tf.summary`: TensorFlow only."""
    return module_available("tensorflow")


@dataclasses.dataclass
class ProtocolCallbacks:
    """The callback list for `model.fit` and handles on the ones read after it."""

    callbacks: list
    best: callbacks_lib.BestModelCheckpoint
    early_stopping: callbacks_lib.ResumableEarlyStopping
    divergence: callbacks_lib.DivergenceMonitor


def build_callbacks(files, save_fn=None, verbose=0, gradient_log_freq=0, attention_batch=None):
    """The protocol's callbacks, in the order they must run.

    Order matters at the end of an epoch: the learning-rate and stopping
    decisions first, then the best checkpoint, then the journal (history and
    the callbacks' states), and `BackupAndRestore` LAST, so that an epoch the
    backup records as done has all its files written.

    `gradient_log_freq` (steps, or `"epoch"`; 0 for none) adds a
    `GradientNormLogger` writing to `logs/gradients`, with depth attention
    measured on the first batch of `attention_batch`.
    """
    reduce_lr = callbacks_lib.ResumableReduceLROnPlateau(
        monitor=MONITOR, mode=MONITOR_MODE, factor=LR_FACTOR, patience=LR_PATIENCE,
        min_lr=MIN_LR, verbose=verbose,
    )  # fmt: skip
    early_stopping = callbacks_lib.ResumableEarlyStopping(
        monitor=MONITOR, mode=MONITOR_MODE, patience=EARLY_STOPPING_PATIENCE, verbose=verbose
    )
    best = callbacks_lib.BestModelCheckpoint(
        files.best_model, files.best_record, monitor=MONITOR, mode=MONITOR_MODE,
        save_fn=save_fn, verbose=verbose,
    )  # fmt: skip
    journal = callbacks_lib.TrainingJournal(
        files.history, files.training_state,
        {"reduce_lr_on_plateau": reduce_lr, "early_stopping": early_stopping},
    )  # fmt: skip
    divergence = callbacks_lib.DivergenceMonitor()
    instruments = []
    if tensorboard_available():
        instruments.append(keras.callbacks.TensorBoard(log_dir=files.logs, write_graph=False))
    if gradient_log_freq:
        instruments.append(
            callbacks_lib.GradientNormLogger(
                files.gradient_logs, update_freq=gradient_log_freq, attention_batch=attention_batch
            )
        )
    backup = keras.callbacks.BackupAndRestore(files.backup, double_checkpoint=True)
    callbacks = [divergence, reduce_lr, early_stopping, best, *instruments, journal, backup]
    return ProtocolCallbacks(callbacks, best, early_stopping, divergence)
