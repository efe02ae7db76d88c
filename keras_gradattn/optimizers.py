"""Optimizers of the paper's protocol that Keras lacks: Adam with coupled L2."""

import keras
from keras import ops

from keras_gradattn.utils import keras_internals
from keras_gradattn.utils import register_serializable

# The class Keras instantiates for `keras.optimizers.Adam` on this backend.
# On PyTorch it is a subclass that updates all variables at once with
# `torch._foreach` kernels; deriving from it, rather than from
# `keras.optimizers.Adam`, keeps that fast path for AdamL2 (a per-variable
# Python loop costs several times the step of a small model there).
# `__new__` alone picks that class without creating variables: importing
# this module must compute nothing, since a JAX process group must be joined
# before JAX's first computation and TensorFlow's collectives configured
# before its runtime starts.
_BackendAdam = type(keras.optimizers.Adam.__new__(keras.optimizers.Adam))


@register_serializable
class AdamL2(_BackendAdam):
    """Adam with coupled L2 regularisation, as `torch.optim.Adam(weight_decay=...)`.

    The reference trains with PyTorch's Adam and `weight_decay=1e-4`, which
    adds `l2 * w` to every gradient before the Adam moments (unlike AdamW,
    whose decoupled decay shrinks weights outside the adaptive step). Keras'
    `Adam(weight_decay=...)` is the decoupled kind, hence this class. Like the
    reference, it regularises every trainable variable, BatchNorm scales and
    biases included. The L2 term is added after gradient clipping and after
    any cross-replica reduction, as PyTorch adds it inside the step. The Adam
    update itself is Keras' (epsilon 1e-7 added to sqrt(v); PyTorch adds 1e-8
    to the bias-corrected sqrt(v)), a difference far below training noise.

    Args:
        learning_rate: as `keras.optimizers.Adam`.
        l2: coefficient added as `l2 * variable` to each gradient.
        **kwargs: any other `keras.optimizers.Adam` argument.
    """

    def __init__(self, learning_rate=1e-3, l2=1e-4, name="adam_l2", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if l2 < 0:
            raise ValueError(f"`l2` must be >= 0. Received: {l2}")
        self.l2 = l2

    def _with_l2(self, gradient, variable):
        if not self.l2:
            return gradient
        return gradient + ops.cast(self.l2, gradient.dtype) * ops.cast(
            variable, gradient.dtype
        )

    def update_step(self, gradient, variable, learning_rate):
        # TensorFlow and JAX update variable by variable.
        super().update_step(self._with_l2(gradient, variable), variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update({"l2": self.l2})
        return config


# PyTorch updates all variables in one call and never calls update_step.
keras_internals.transform_gradients_in_parallel_update(AdamL2, AdamL2._with_l2)
