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


def batch_normalization_in_training(inputs, gamma, beta, epsilon):
    """One `torch.nn.functional.batch_norm` call over channels-last `inputs`.

    Keras' portable BatchNormalization makes about a dozen element-wise
    kernels and two reductions of every training step's batch norm (each
    with its backward), most of the step's time on a CPU; PyTorch's kernel
    computes the statistics, normalises and differentiates in one.
    """
    if inputs.ndim != 4 or inputs.dtype != torch.float32:
        return None
    # A view, no copy: NHWC memory read as NCHW is PyTorch's channels_last
    # format, which its batch-norm kernels take as they are.
    channels_first = inputs.permute(0, 3, 1, 2)
    channels = channels_first.shape[1]
    # Scratch buffers that the kernel fills with this batch's statistics
    # (momentum 1): the moving averages stay Keras' to update, in Keras'
    # convention (biased variance), whatever PyTorch's.
    batch_mean = torch.zeros(channels, dtype=inputs.dtype, device=inputs.device)
    unbiased_variance = torch.zeros(channels, dtype=inputs.dtype, device=inputs.device)
    outputs = torch.nn.functional.batch_norm(
        channels_first, batch_mean, unbiased_variance, _tensor(gamma), _tensor(beta), True, 1.0, epsilon
    )
    count = channels_first.numel() // channels
    batch_variance = unbiased_variance * ((count - 1) / count)
    return outputs.permute(0, 2, 3, 1), batch_mean, batch_variance


def _tensor(value):
    # A Keras variable's torch tensor (the parameter autograd tracks).
    import keras

    return keras.ops.convert_to_tensor(value)
