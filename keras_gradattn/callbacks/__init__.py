"""Training-time instruments."""

from keras_gradattn.callbacks.gradient_norm_logger import GradientNormLogger
