"""Data parallelism over processes for Keras' PyTorch backend, on `torch.distributed`.

Keras 3 has no data parallelism for PyTorch, so this module gives the
semantics of `DistributedDataParallel` to a Keras model trained by `fit`:

- every process starts from process 0's weights (broadcast once);
- each parameter's gradient is averaged over the processes as soon as the
  backward pass has accumulated it (`register_post_accumulate_grad_hook`),
  before Keras' train step hands the gradients to the optimizer: every
  process applies the same update, and the gradient logger, which hooks the
  optimizer, sees the averaged gradients;
- BatchNorm is synchronized: each layer's batch mean and mean square are
  averaged over the processes with a differentiable all-reduce, so the
  statistics, their gradients and the moving averages are those of the
  global batch, exactly as on one process (`torch.nn.SyncBatchNorm`'s
  arithmetic). Process shares are equal (the global batch is a multiple of
  the process count and partial batches are dropped), so the mean of the
  shares' means is the global mean.

Collectives run on gloo for CPUs and nccl for CUDA devices. Every wait is
bounded by the group's timeout; a process that dies makes the others fail in
their next collective (`lost_process_errors`).
"""

import datetime
import functools
import os
import re

import numpy as np
import torch
import torch.distributed as dist

from keras_gradattn.training.errors import TrainingSetupError
from keras_gradattn.utils.training_wrappers import trained_classifier


# Words of the errors gloo and nccl raise when a peer is gone or silent.
_LOST_PROCESS_MARKERS = ("Connection closed", "Connection reset", "timed out", "Timed out", "Timeout", "NCCL", "gloo")


def lost_process_reason(error):
    """The line of `error` that says another process is gone (its source
    location stripped), or None when `error` says nothing of the kind."""
    if not isinstance(error, (dist.DistError, RuntimeError)):
        return None
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if isinstance(error, dist.DistError) or any(marker in line for marker in _LOST_PROCESS_MARKERS):
            # gloo prefixes its messages with "[path/to/file.cc:553] ".
            line = re.sub(r"^(\x1b\[[0-9;]*m)*\[[^\]]*\]\s*", "", line)
            return line.split(". ")[0][:160]
    return None


def connect(spec):
    """Joins the process group `spec` describes; returns the collective backend's name.

    Raises `TrainingSetupError` when process 0 cannot listen on the
    coordinator address, or the others cannot reach it within the timeout.
    """
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        # One GPU a process: torchrun's LOCAL_RANK, else the process index
        # modulo this machine's GPUs. Keras' "cuda" then means that GPU.
        local_rank = int(os.environ.get("LOCAL_RANK", spec.process_id % torch.cuda.device_count()))
        torch.cuda.set_device(local_rank)
    backend = "nccl" if use_cuda else "gloo"
    timeout = datetime.timedelta(seconds=spec.timeout_seconds)
    # Under torchrun the launcher's agent already serves the store on
    # MASTER_PORT; process 0 then joins it like the others.
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    serves_store = spec.is_chief and not agent_store
    try:
        store = dist.TCPStore(
            spec.coordinator_host, spec.coordinator_port, world_size=spec.num_processes,
            is_master=serves_store, timeout=timeout, wait_for_workers=not agent_store,
        )  # fmt: skip
        dist.init_process_group(
            backend, store=store, rank=spec.process_id, world_size=spec.num_processes, timeout=timeout
        )
    except (dist.DistError, RuntimeError, OSError) as error:
        problem = (
            f"could not gather the other processes at {spec.coordinator}" if serves_store
            else f"could not reach the coordinator {spec.coordinator}"
        )  # fmt: skip
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrainingSetupError(
            f"process {spec.process_id} of {spec.num_processes} {problem} within {spec.timeout_seconds:g} s "
            f"({first_line}); start every process with the same --num-processes and --coordinator "
            "(process 0's address), or raise --process-timeout."
        ) from None
    return backend


def close():
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(value):
    """Process 0's `value` (any picklable object), on every process."""
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_gather_object(value):
    """Every process's `value`, in process order."""
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def all_reduce_mean(values):
    """The mean over processes of a 1-D float vector (NumPy in, NumPy out)."""
    tensor = torch.as_tensor(np.asarray(values, np.float64))
    dist.all_reduce(tensor)
    return (tensor / dist.get_world_size()).numpy()


def make_data_parallel(model, batch_norm_layers):
    """Makes `model` train as one replica of a data-parallel group."""
    world_size = dist.get_world_size()
    # The classifier's variables: a device-path wrapper's images are the
    # same on every process already, and its augmentation layers' random
    # states are seeded per process (each augments its own share).
    with torch.no_grad():
        for variable in trained_classifier(model).variables:
            dist.broadcast(variable.value.data, src=0)
    for variable in model.trainable_variables:
        variable.value.register_post_accumulate_grad_hook(functools.partial(_average_gradient, world_size))
    for layer in batch_norm_layers:
        # An instance attribute: saved files and other backends never see it.
        layer._moments = functools.partial(_synchronized_moments, layer, world_size)
        # The fused kernel would compute this process's statistics only.
        layer.use_fused_kernel = False
    return model


def _average_gradient(world_size, parameter):
    dist.all_reduce(parameter.grad)
    parameter.grad.div_(world_size)


def _synchronized_moments(layer, world_size, inputs, mask):
    if mask is not None:
        raise NotImplementedError("Synchronized BatchNorm with a mask is not supported.")
    axes = tuple(layer._reduction_axes)
    moments = torch.stack([torch.mean(inputs, dim=axes), torch.mean(torch.square(inputs), dim=axes)])
    mean, mean_square = _DifferentiableSum.apply(moments) / world_size
    # The same formula as Keras' own torch `moments`: E[x^2] - E[x]^2.
    return mean, mean_square - torch.square(mean)


class _DifferentiableSum(torch.autograd.Function):
    """The sum over processes, with the sum of the gradients as its gradient
    (each process's input reaches every process's output)."""

    @staticmethod
    def forward(context, tensor):
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(context, gradient):
        total = gradient.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total
