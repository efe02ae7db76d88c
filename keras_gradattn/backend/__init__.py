"""The only backend-specific code in the package: automatic differentiation.

Everything else is written with `keras.ops`. Each backend module exposes one
function with the same contract, and `value_and_grad` below picks the one for
the active Keras backend.
"""

import importlib

import keras

SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")


def value_and_grad(fn, args):
    """Evaluates `fn(*args)` and its gradient with respect to every argument.

    Args:
        fn: a function of tensors returning a scalar tensor.
        args: a list of backend tensors (floating point).

    Returns:
        `(value, grads)`: the scalar value and a list with one gradient per
        argument, `None` where the value does not depend on that argument at
        all (so callers can tell "no gradient path" from "a gradient of zero").
    """
    return _backend_module().value_and_grad(fn, list(args))


def _backend_module():
    name = keras.backend.backend()
    if name not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"keras_gradattn needs a backend with automatic differentiation; "
            f"received KERAS_BACKEND={name!r}, allowed: {', '.join(SUPPORTED_BACKENDS)}"
        )
    return importlib.import_module(f"keras_gradattn.backend.{name}")
