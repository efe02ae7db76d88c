"""Stops training when the loss stops being finite, and says where."""

import keras
import numpy as np

from keras_gradattn.callbacks.epoch_logs import as_float


class DivergenceMonitor(keras.callbacks.TerminateOnNaN):
    """`TerminateOnNaN` that records where the training loss became NaN or
    infinite (`self.diverged`: 1-based epoch, 0-based batch, the value);
    `None` while training is healthy."""

    def __init__(self):
        # Keras 3.10's TerminateOnNaN takes no arguments; later releases
        # take `raise_error`, False by default. Set here for all of them: a
        # graceful stop lets the other callbacks record the run.
        super().__init__()
        self.raise_error = False
        self.diverged = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and self.diverged is None:
            value = as_float(loss)
            if not np.isfinite(value):
                self.diverged = {"epoch": self._epoch + 1, "batch": int(batch), "loss": repr(value)}
        super().on_batch_end(batch, logs)
