"""The paper's training protocol: optimizer, callbacks, run directories, metrics."""

from keras_gradattn.training.optimizers import AdamL2
