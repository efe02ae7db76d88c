"""MNIST-style IDX files (`train-images-idx3-ubyte.gz` and friends).

The format (LeCun et al.): a big-endian header of magic number and dimension
sizes, then raw unsigned bytes. Magic 0x00000803 = 3-D ubyte images,
0x00000801 = 1-D ubyte labels. Files may be gzip-compressed or plain.
"""

import gzip
import os
import zlib

import numpy as np

from keras_gradattn.data import discovery
from keras_gradattn.data.errors import DatasetError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EXPECTED_FILES = (
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"
)


def _existing(folder, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def find(spec, data_dir):
    """The first candidate folder holding all four IDX files, or `None`."""
    for folder in discovery.folder_candidates(spec, data_dir, system_defaults=True):
        stems = [stem for pair in SPLIT_FILES.values() for stem in pair]
        if all(_existing(folder, stem) for stem in stems):
            return folder
    return None


def read_idx(path, expected_magic):
    """Reads one IDX file into a uint8 array, checking magic and length."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(
            f"Cannot read {path}: {error} (truncated or corrupt download?)."
        ) from None
    if len(data) < 8:
        raise DatasetError(f"{path} is truncated: {len(data)} bytes, no IDX header.")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DatasetError(
            f"{path} has IDX magic number {magic:#010x}; expected "
            f"{expected_magic:#010x} (not an IDX file of this kind?)."
        )
    num_dims = magic & 0xFF
    header_size = 4 + 4 * num_dims
    if len(data) < header_size:
        raise DatasetError(f"{path} is truncated inside its {header_size}-byte header.")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(num_dims)]
    expected_size = header_size + int(np.prod(dims))
    if len(data) != expected_size:
        raise DatasetError(
            f"{path} holds {len(data)} bytes; its header {dims} needs "
            f"{expected_size} (truncated or corrupt file)."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)


def load(spec, folder):
    """`{"train": (images, labels), "test": (images, labels)}`, images (N, H, W, 1)."""
    splits = {}
    for split, (images_stem, labels_stem) in SPLIT_FILES.items():
        images_path = _existing(folder, images_stem)
        labels_path = _existing(folder, labels_stem)
        images = read_idx(images_path, IMAGES_MAGIC)[..., np.newaxis]
        labels = read_idx(labels_path, LABELS_MAGIC).astype(np.int32)
        if len(images) != len(labels):
            raise DatasetError(
                f"{images_path} has {len(images)} images but {labels_path} has "
                f"{len(labels)} labels."
            )
        splits[split] = (images, labels)
    return splits
