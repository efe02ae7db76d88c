"""Independent NumPy implementations of the paper's operations, written from
their definitions (PyTorch semantics), used as ground truth by the tests."""

import numpy as np


def conv2d(x, kernel, stride=1, padding=0, bias=None):
    """NHWC convolution, HWIO kernel, symmetric zero padding (PyTorch-style)."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    kernel_h, kernel_w = kernel.shape[:2]
    out_h = (x.shape[1] - kernel_h) // stride + 1
    out_w = (x.shape[2] - kernel_w) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[-1]), np.float64)
    for i in range(kernel_h):
        for j in range(kernel_w):
            patch = x[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride]
            out += np.einsum("nhwc,co->nhwo", patch, kernel[i, j])
    return out if bias is None else out + bias


def batch_norm(x, gamma, beta, mean, variance, epsilon):
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def max_pool(x, size=3, stride=2, padding=1):
    x = np.pad(
        x,
        ((0, 0), (padding, padding), (padding, padding), (0, 0)),
        constant_values=-np.inf,
    )
    out_h = (x.shape[1] - size) // stride + 1
    out_w = (x.shape[2] - size) // stride + 1
    windows = [
        x[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride]
        for i in range(size)
        for j in range(size)
    ]
    return np.max(np.stack(windows), axis=0)


def relu(x):
    return np.maximum(x, 0)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def layer_norm(x, gamma, beta, epsilon):
    mean = x.mean(-1, keepdims=True)
    variance = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def rotary(x, base=10000.0):
    """Rotate-half RoPE on (batch, sequence, heads, head_dim), position =
    sequence index: x * cos(theta) + rotate_half(x) * sin(theta)."""
    head_dim = x.shape[-1]
    half = head_dim // 2
    positions = np.arange(x.shape[1], dtype=np.float64)
    frequencies = base ** (-np.arange(half, dtype=np.float64) * 2 / head_dim)
    theta = np.outer(positions, frequencies)  # (sequence, half)
    theta = np.concatenate([theta, theta], -1)[None, :, None, :]
    rotated = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * np.cos(theta) + rotated * np.sin(theta)


def self_attention(x, weights, num_heads, use_rotary=False):
    """Multi-head self-attention; returns (output, weights per head)."""
    batch, sequence, dim = x.shape
    head_dim = dim // num_heads

    def project(name):
        y = x @ weights[f"{name}_kernel"]
        if f"{name}_bias" in weights:
            y = y + weights[f"{name}_bias"]
        return y.reshape(batch, sequence, num_heads, head_dim)

    query, key, value = project("query"), project("key"), project("value")
    if use_rotary:
        query, key = rotary(query), rotary(key)
    scores = np.einsum("bqhd,bkhd->bhqk", query, key) / np.sqrt(head_dim)
    attention = softmax(scores)
    context = np.einsum("bhqk,bkhd->bqhd", attention, value).reshape(
        batch, sequence, dim
    )
    output = context @ weights["output_kernel"] + weights["output_bias"]
    return output, attention


def encoder_layer(x, weights, num_heads, norm_first=False, use_rotary=False, epsilon=1e-5):
    """PyTorch's nn.TransformerEncoderLayer (ReLU) at inference."""

    def attention_norm(y):
        return layer_norm(y, weights["norm1_gamma"], weights["norm1_beta"], epsilon)

    def feedforward_norm(y):
        return layer_norm(y, weights["norm2_gamma"], weights["norm2_beta"], epsilon)

    def feedforward(y):
        hidden = relu(y @ weights["ff1_kernel"] + weights["ff1_bias"])
        return hidden @ weights["ff2_kernel"] + weights["ff2_bias"]

    if norm_first:
        attended, scores = self_attention(attention_norm(x), weights, num_heads, use_rotary)
        x = x + attended
        x = x + feedforward(feedforward_norm(x))
    else:
        attended, scores = self_attention(x, weights, num_heads, use_rotary)
        x = attention_norm(x + attended)
        x = feedforward_norm(x + feedforward(x))
    return x, scores


def depth_encoder(tokens, layer_weights, num_heads, position_embedding=None, norm_first=False,
                  use_rotary=False, final_norm=None, epsilon=1e-5):
    """The depth-token encoder at inference: an optional learned position
    table added to the tokens, the encoder layers in sequence, then an optional
    final LayerNorm `(gamma, beta)`. Returns (output, attention averaged over
    heads, (batch, layers, queries, keys))."""
    x = tokens if position_embedding is None else tokens + position_embedding
    attention = []
    for weights in layer_weights:
        x, scores = encoder_layer(x, weights, num_heads, norm_first, use_rotary, epsilon)
        attention.append(scores.mean(axis=1))
    if final_norm is not None:
        x = layer_norm(x, *final_norm, epsilon)
    return x, np.stack(attention, axis=1)


def tap_tokens(feature_maps, kernels, biases):
    """One token per feature map: global average pool, then its own dense
    projection; stacked shallow to deep, (batch, taps, dim)."""
    return np.stack(
        [f.mean(axis=(1, 2)) @ k + b for f, k, b in zip(feature_maps, kernels, biases)],
        axis=1,
    )


def squeeze_excitation(x, squeeze_kernel, excite_kernel):
    gates = sigmoid(relu(x.mean(axis=(1, 2)) @ squeeze_kernel) @ excite_kernel)
    return x * gates[:, None, None, :]


def cbam(x, squeeze_kernel, excite_kernel, spatial_kernel):
    def mlp(descriptor):
        return relu(descriptor @ squeeze_kernel) @ excite_kernel

    x = x * sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))[:, None, None, :]
    descriptor = np.concatenate(
        [x.mean(-1, keepdims=True), x.max(-1, keepdims=True)], -1
    )
    padding = spatial_kernel.shape[0] // 2
    return x * sigmoid(conv2d(descriptor, spatial_kernel, padding=padding))
