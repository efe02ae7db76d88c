"""Stand-in FashionMNIST files, so a whole `gradattn-train` epoch on
FashionMNIST-shaped data can be timed on a machine without the download."""

import os
import struct

import numpy as np

FAKE_FASHION_MNIST_DATASET = "fashion_mnist"


def _idx_bytes(array, magic):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", size) for size in array.shape) + array.tobytes()


def write_fake_fashion_mnist(folder, num_train=6000, num_test=1000):
    """Writes the four IDX files of FashionMNIST (uncompressed) into `folder`
    and returns `folder`: random 28x28 uint8 images, labels cycling through
    the 10 classes. Only the format and shapes are FashionMNIST's: throughput
    measured on them is meaningful, accuracy is not."""
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for prefix, count in (("train", num_train), ("t10k", num_test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        for suffix, array, magic in (("images-idx3-ubyte", images, 0x803), ("labels-idx1-ubyte", labels, 0x801)):
            with open(os.path.join(folder, f"{prefix}-{suffix}"), "wb") as file:
                file.write(_idx_bytes(array, magic))
    return folder
