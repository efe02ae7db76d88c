"""Automatic differentiation with torch.autograd."""

import torch


def value_and_grad(fn, args):
    # Fresh leaves: gradients are taken with respect to these tensors only.
    args = [torch.as_tensor(arg).detach().requires_grad_(True) for arg in args]
    with torch.enable_grad():
        value = fn(*args)
        # allow_unused gives None for arguments the value does not depend on.
        grads = torch.autograd.grad(value, args, allow_unused=True)
    return value.detach(), list(grads)
