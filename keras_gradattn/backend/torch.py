"""Automatic differentiation with torch.autograd; static shapes for
torch.compile."""

import contextlib

import torch


def value_and_grad(fn, args):
    # Fresh leaves: gradients are taken with respect to these tensors only.
    args = [torch.as_tensor(arg).detach().requires_grad_(True) for arg in args]
    with torch.enable_grad():
        value = fn(*args)
        # allow_unused gives None for arguments the value does not depend on.
        grads = torch.autograd.grad(value, args, allow_unused=True)
    return value.detach(), list(grads)


def compute_devices():
    """The device Keras' torch backend places tensors on (its
    `KERAS_TORCH_DEVICE`, else MPS, CUDA, XPU or the CPU), with the GPU's name;
    every CUDA device when it is CUDA (a run uses the first; with
    `--distribute`, each process of a group uses the GPU torchrun's `LOCAL_RANK` names, else
    its process id modulo the GPU count)."""
    import keras

    # Where Keras puts a new tensor is the device it computes on.
    device = str(keras.ops.zeros(()).device)
    if device.startswith("cuda"):
        return [f"cuda:{index} ({torch.cuda.get_device_name(index)})" for index in range(torch.cuda.device_count())]
    return [device if ":" in device else f"{device}:0"]


def with_static_shapes(step_function):
    # Dynamo reads its configuration when it compiles, which happens inside
    # the call, so the patch covers the first compilation and every
    # recompilation (a new batch size) without changing the global defaults.
    return torch._dynamo.config.patch(
        automatic_dynamic_shapes=False, assume_static_by_default=True
    )(step_function)


def applied_gradients(grads):
    # With several processes, `torch_processes` averages each gradient as it
    # accumulates, before the optimizer sees it: they are the applied ones.
    return list(grads)


def state_creation_scope(model):
    # Several PyTorch processes each own plain variables: nothing to enter.
    return contextlib.nullcontext()
