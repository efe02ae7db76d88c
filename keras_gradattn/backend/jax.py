"""Automatic differentiation with jax.value_and_grad."""

import contextlib

import jax
from jax.extend import core as jax_core


def value_and_grad(fn, args):
    args = list(args)
    argnums = tuple(range(len(args)))
    value, grads = jax.value_and_grad(fn, argnums=argnums)(*args)
    # jax.grad returns zeros for an argument the value does not depend on;
    # a dependency walk over the traced program tells the two cases apart.
    connected = _arguments_reaching_output(fn, args)
    grads = [grad if is_connected else None for grad, is_connected in zip(grads, connected)]
    return value, grads


def _arguments_reaching_output(fn, args):
    closed_jaxpr = jax.make_jaxpr(fn)(*args)
    jaxpr = closed_jaxpr.jaxpr
    needed = {var for var in jaxpr.outvars if isinstance(var, jax_core.Var)}
    for equation in reversed(jaxpr.eqns):
        if any(out in needed for out in equation.outvars):
            # Conservative for nested programs (cond, scan, pjit): every input
            # of an equation that produces a needed value counts as needed.
            needed.update(var for var in equation.invars if isinstance(var, jax_core.Var))
    return [var in needed for var in jaxpr.invars]


def compute_devices():
    """This process's JAX devices of its default platform (GPUs when its CUDA
    build sees them, else the CPU), as "platform:id (kind)" ("cpu:id" for
    CPUs). With several processes, `jax.devices()` lists every process's."""
    return [
        f"cpu:{device.id}" if device.platform == "cpu" else f"{device.platform}:{device.id} ({device.device_kind})"
        for device in jax.local_devices()
    ]


def with_static_shapes(step_function):
    # jax.jit traces each input shape as its own static program already.
    return step_function


def applied_gradients(grads):
    # With `DataParallel` the step differentiates the loss of the global
    # batch: the gradients are the applied ones already.
    return list(grads)


def state_creation_scope(model):
    # `DataParallel` lays variables out when they are created, whatever the
    # scope: nothing to enter.
    return contextlib.nullcontext()


def batch_normalization_in_training(inputs, gamma, beta, epsilon):
    # XLA fuses Keras' portable batch norm already.
    return None
