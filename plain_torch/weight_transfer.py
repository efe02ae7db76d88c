"""Copies a Keras model's weights, read as NumPy, into the plain PyTorch twin.

Every tensor of the PyTorch model's `state_dict` is looked up by the Keras
weight path the architecture gives it (`layer2.0.conv1.weight` <-
`stage2/block1/conv1/kernel`), transposed from Keras' layout, and checked for
shape; every Keras weight must be used exactly once. A missing, extra or
misshapen weight is an architecture mismatch and raises.
"""

import re

import numpy as np
import torch

BATCH_NORM = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
LAYER_NORM = {"weight": "gamma", "bias": "beta"}
# nn.TransformerEncoderLayer / RoPEEncoderLayer sublayer -> Keras layer inside `self_attention`
# or the encoder layer.
ENCODER_LINEARS = {
    "self_attn.out_proj": "self_attention/attention_output",
    "out_proj": "self_attention/attention_output",
    "q_proj": "self_attention/query",
    "k_proj": "self_attention/key",
    "v_proj": "self_attention/value",
    "linear1": "feedforward_intermediate",
    "linear2": "feedforward_output",
}
ENCODER_NORMS = {"norm1": "attention_norm", "norm2": "feedforward_norm"}


def conv_kernel(kernel):
    return kernel.transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)


def dense_kernel(kernel):
    return kernel.T  # (in, out) -> (out, in)


def _backbone_source(name):
    """Keras path and layout conversion of a backbone tensor, or None."""
    match = re.fullmatch(r"(conv1|bn1)\.(\w+)", name)
    if match:
        layer, field = match.groups()
        if layer == "conv1":
            return ["stem/conv/kernel"], conv_kernel
        return [f"stem/bn/{BATCH_NORM[field]}"], None
    match = re.fullmatch(r"layer(\d+)\.(\d+)\.(conv1|conv2|bn1|bn2|downsample\.0|downsample\.1)\.(\w+)", name)
    if not match:
        return None
    stage, block, layer, field = match.groups()
    prefix = f"stage{stage}/block{int(block) + 1}"
    keras_layer = {"downsample.0": "shortcut_conv", "downsample.1": "shortcut_bn"}.get(layer, layer)
    if keras_layer.startswith("conv") or keras_layer == "shortcut_conv":
        return [f"{prefix}/{keras_layer}/kernel"], conv_kernel
    return [f"{prefix}/{keras_layer}/{BATCH_NORM[field]}"], None


def _head_source(name):
    """Keras path(s) and conversion of a tensor after the backbone, or None."""
    match = re.fullmatch(r"fc\.(weight|bias)", name)
    if match:
        return (["predictions/kernel"], dense_kernel) if match.group(1) == "weight" else (["predictions/bias"], None)
    match = re.fullmatch(r"tap_projections\.(\d+)\.(weight|bias)", name)
    if match:
        path = f"tap_tokenizer/projection{int(match.group(1)) + 1}"
        return ([f"{path}/kernel"], dense_kernel) if match.group(2) == "weight" else ([f"{path}/bias"], None)
    if name == "pos_embedding":
        return ["depth_encoder/position_embedding/embedding"], None
    match = re.fullmatch(r"encoder\.(?:layers\.)?(\d+)\.(.+)\.(weight|bias|in_proj_weight|in_proj_bias)", name)
    if not match:
        return None
    layer, module, field = match.groups()
    prefix = f"depth_encoder/layer{int(layer) + 1}"
    if field.startswith("in_proj"):
        # nn.MultiheadAttention's fused projection: rows [query; key; value], each (out, in) as a Linear's weight.
        kind = "kernel" if field == "in_proj_weight" else "bias"
        paths = [f"{prefix}/self_attention/{part}/{kind}" for part in ("query", "key", "value")]
        if kind == "kernel":
            return paths, lambda *kernels: np.concatenate([kernel.T for kernel in kernels])
        return paths, lambda *biases: np.concatenate(biases)
    if module in ENCODER_NORMS:
        return [f"{prefix}/{ENCODER_NORMS[module]}/{LAYER_NORM[field]}"], None
    if module in ENCODER_LINEARS:
        keras_layer = f"{prefix}/{ENCODER_LINEARS[module]}"
        return ([f"{keras_layer}/kernel"], dense_kernel) if field == "weight" else ([f"{keras_layer}/bias"], None)
    return None


def keras_source(name):
    """`(keras paths, conversion)` of a PyTorch `state_dict` name, or None."""
    if name.startswith("backbone."):
        return _backbone_source(name[len("backbone."):])
    return _head_source(name)


def load_keras_weights(model, keras_weights):
    """Copies `{keras weight path: numpy array}` into `model` (a module of
    `plain_torch.models`), in place.

    Raises:
        ValueError: a PyTorch tensor with no Keras weight, a shape mismatch,
            or Keras weights left unused: the two models differ.
    """
    used = set()
    state = model.state_dict()
    for name, tensor in state.items():
        if name.endswith("num_batches_tracked"):
            continue  # PyTorch's step counter, no weight.
        source = keras_source(name)
        if source is None:
            raise ValueError(f"no Keras weight corresponds to the PyTorch tensor {name!r}")
        paths, convert = source
        missing = [path for path in paths if path not in keras_weights]
        if missing:
            raise ValueError(f"the PyTorch tensor {name!r} needs Keras weight(s) {missing}, which the model lacks")
        arrays = [np.asarray(keras_weights[path]) for path in paths]
        value = convert(*arrays) if convert else arrays[0]
        if tuple(value.shape) != tuple(tensor.shape):
            raise ValueError(
                f"shape mismatch: PyTorch {name!r} {tuple(tensor.shape)} against Keras {paths} "
                f"{tuple(value.shape)} after conversion"
            )
        with torch.no_grad():
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))
        used.update(paths)
    unused = sorted(set(keras_weights) - used)
    if unused:
        raise ValueError(f"Keras weights with no PyTorch counterpart: {unused}")
    return model
