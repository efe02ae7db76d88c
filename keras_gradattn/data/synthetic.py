"""Deterministic, learnable random images for smoke tests.

Each class has a fixed random prototype (smooth, low-frequency); an example is
its class prototype plus per-pixel noise, so a small model separates the
classes within a few steps. Everything derives from `seed`.
"""

import numpy as np

DEFAULT_NUM_EXAMPLES = 1000


def make_synthetic(num_examples, image_size, channels, num_classes, seed, noise=0.35):
    """`(images (N, H, W, C) uint8, labels (N,) int32)`, balanced classes."""
    for name, value in (("num_examples", num_examples), ("num_classes", num_classes),
                        ("channels", channels)):  # fmt: skip
        if int(value) <= 0:
            raise ValueError(f"synthetic data needs {name} > 0, got {value}.")
    height, width = image_size
    rng = np.random.default_rng([seed, 7])
    # Coarse 4x4 random patterns blown up to full size: smooth enough that a
    # conv net picks them up quickly, distinct per class.
    coarse = rng.uniform(0.0, 1.0, size=(num_classes, 4, 4, channels))
    rows = np.minimum(np.arange(height) * 4 // height, 3)
    cols = np.minimum(np.arange(width) * 4 // width, 3)
    prototypes = coarse[:, rows][:, :, cols]
    labels = np.arange(num_examples) % num_classes
    labels = rng.permutation(labels).astype(np.int32)
    noise_values = rng.uniform(-1.0, 1.0, size=(num_examples, height, width, channels))
    images = (1.0 - noise) * prototypes[labels] + noise * 0.5 * (noise_values + 1.0)
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8), labels
