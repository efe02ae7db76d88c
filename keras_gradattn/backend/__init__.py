"""Backend-specific code: one small module per backend behind one function.

Everything else in the package is written with `keras.ops`. The backend
modules (`jax.py`, `tensorflow.py`, `torch.py`) each implement
`value_and_grad` with their engine's automatic differentiation,
`compute_devices`, the devices each would compute on, and
`with_static_shapes` for the compiled train, test and predict steps, and
`applied_gradients`, the gradients a data-parallel step applies, and
`state_creation_scope`, where state written inside that step is made, and
`batch_normalization_in_training`, a fast path for layers (PyTorch only;
the others return None and the layer takes Keras' portable path); the
functions below pick the one of the active Keras backend. (Private
Keras API, which is not backend-specific, is confined to
`keras_gradattn/utils/keras_internals.py`.)

Importing this package imports no Keras: `BACKENDS` serves the command-line
programs before they choose a backend.
"""

import importlib
import os

# The Keras backends the package supports, in the order a command falls
# back to them when the configured one is not installed.
BACKENDS = ("tensorflow", "jax", "torch")
# Set to "1", every layer runs Keras' portable code even where a backend
# has a faster kernel (`batch_normalization_in_training`).
PORTABLE_LAYERS_VARIABLE = "GRADATTN_PORTABLE_LAYERS"


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


def compute_devices():
    """The devices the active Keras backend computes on, as strings
    "kind:index (name)", kind "cpu", "gpu", "cuda", "mps", "tpu" or "xpu":
    accelerators when the backend sees any, else `["cpu:0"]`-like. A run
    without `--distribute` uses the first."""
    return _backend_module().compute_devices()


def only_cpus(devices):
    """Whether `compute_devices()` found no accelerator."""
    return all(device.startswith("cpu") for device in devices)


def with_static_shapes(step_function):
    """Wraps a compiled step function so that its compiler keeps every shape
    static (one compiled program per input shape).

    Under PyTorch, Keras' layer calls split a step into many small graphs
    (graph breaks); Dynamo then marks sizes that differ between those calls
    as symbolic, and Inductor cannot lower convolutions over symbolic sizes
    (`cannot determine truth value of Relational`). JAX and TensorFlow trace
    static shapes already: there the function comes back unchanged.
    """
    return _backend_module().with_static_shapes(step_function)


def applied_gradients(grads):
    """The gradients the optimizer applies, from those one replica's step
    computed, for code that runs inside a train step (the gradient-norm
    recorder): under a TensorFlow distribution strategy with several
    replicas, their sum over the replicas (each replica's loss is divided by
    the replica count: the sum is the global batch's gradient); elsewhere
    the gradients themselves (JAX's data-parallel step differentiates the
    global batch's loss, and with several PyTorch processes each gradient is
    averaged before the optimizer sees it).
    """
    return _backend_module().applied_gradients(list(grads))


def state_creation_scope(model):
    """A context manager in which variables that `model`'s train step writes
    from every replica are created (the gradient-norm recorder's window):
    under TensorFlow, `model`'s distribution strategy when none is active,
    so that they are mirrored like the optimizer's own; elsewhere nothing.
    """
    return _backend_module().state_creation_scope(model)


def batch_normalization_in_training(inputs, gamma, beta, epsilon):
    """Batch normalisation of channels-last `inputs` with this batch's
    statistics, in one fused kernel where the backend has one.

    Returns `(outputs, batch_mean, batch_variance)` (variance biased, as
    Keras keeps it) or None when the backend has no fast path for these
    inputs (on JAX, XLA fuses Keras' portable ops; on TensorFlow, its fused
    kernel was measured no faster on a CPU), or when `GRADATTN_PORTABLE_LAYERS=1` is set (to compare the
    two paths, or to rule the fast one out): the caller then computes it
    the portable way.
    """
    if os.environ.get(PORTABLE_LAYERS_VARIABLE) == "1":
        return None
    return _backend_module().batch_normalization_in_training(inputs, gamma, beta, epsilon)


def _backend_module():
    import keras

    name = keras.backend.backend()
    if name not in BACKENDS:
        raise ValueError(
            f"keras_gradattn needs a backend with automatic differentiation; "
            f"received KERAS_BACKEND={name!r}, allowed: {', '.join(BACKENDS)}"
        )
    return importlib.import_module(f"keras_gradattn.backend.{name}")
