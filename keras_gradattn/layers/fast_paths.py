"""Keras' BatchNormalization with a faster kernel where the backend has one.

The same layer, with the same configuration, variables and results; only
the kernel it runs in training differs, and only on PyTorch (see
`keras_gradattn.backend`): one fused batch-norm kernel instead of Keras'
element-wise ops and reductions. On JAX, XLA fuses those already; on
TensorFlow, its fused kernel was measured and was no faster on a CPU. There
the layer runs Keras' own code. A model built from it
saves the same weights as one built from Keras' layer, so `.keras` files
stay portable across backends; `GRADATTN_PORTABLE_LAYERS=1` switches the
fast path off.

Measured on a 2-core CPU (`scripts/benchmark_fast_paths.py`, docs/benchmarks.md).
A channels-last convolution path (no NHWC-to-NCHW copy of every input) was
measured too and not kept: oneDNN's channels-last convolution backward was
slower there than the copies it saved.
"""

import keras

from keras_gradattn import backend
from keras_gradattn.utils import register_serializable


@register_serializable
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that, in training on PyTorch, runs
    PyTorch's fused kernel for channels-last float32 inputs.

    The moving averages are updated by this layer in Keras' convention, so
    that training gives the same statistics on every backend. Masks,
    synchronized statistics (several replicas), renormalisation, a missing
    scale or center, or an axis other than the last take Keras' path.
    """

    # Set to False on an instance whose statistics are computed elsewhere:
    # several PyTorch processes synchronize them in Keras' path
    # (`keras_gradattn.training.torch_processes`).
    use_fused_kernel = True

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable and self._has_fast_path(inputs, mask):
            fused = backend.batch_normalization_in_training(inputs, self.gamma, self.beta, self.epsilon)
            if fused is not None:
                outputs, batch_mean, batch_variance = fused
                self.moving_mean.assign(self.moving_mean * self.momentum + batch_mean * (1.0 - self.momentum))
                self.moving_variance.assign(
                    self.moving_variance * self.momentum + batch_variance * (1.0 - self.momentum)
                )
                return outputs
        return super().call(inputs, training=training, mask=mask)

    def _has_fast_path(self, inputs, mask):
        return (
            self.use_fused_kernel
            and mask is None
            # Both are newer than the oldest Keras the package supports.
            and not getattr(self, "synchronized", False)
            and not getattr(self, "renorm", False)
            and self.scale
            and self.center
            and self.axis in (-1, len(inputs.shape) - 1)
            and self.compute_dtype == "float32"
        )
