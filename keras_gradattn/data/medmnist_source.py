"""MedMNIST v2 `.npz` files, as written by the `medmnist` package.

`<name>.npz` (28x28) holds `train_images`, `train_labels`, `val_images`,
`val_labels`, `test_images`, `test_labels`; images are (N, 28, 28) for gray
datasets and (N, 28, 28, 3) for RGB ones, labels (N, 1). The larger-size
files (`<name>_64.npz`, ...) are not used: the paper upsizes the 28x28 ones.
"""

import os
import zipfile
import zlib

import numpy as np

from keras_gradattn.data import discovery
from keras_gradattn.data.errors import DatasetError

SPLIT_KEYS = {"train": "train", "validation": "val", "test": "test"}


def file_name(spec):
    return f"{spec.name}.npz"


def find(spec, data_dir):
    """Path of `<name>.npz`, or `None`. `data_dir` may be the file itself."""
    if data_dir is not None and os.path.isfile(data_dir):
        return os.fspath(data_dir)
    candidates = discovery.folder_candidates(spec, data_dir, extra_defaults=["~/.medmnist"])
    for folder in candidates:
        path = os.path.join(folder, file_name(spec))
        if os.path.isfile(path):
            return path
    return None


def load(spec, path):
    """`{"train"|"validation"|"test": (images (N, H, W, C) uint8, labels (N,))}`."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DatasetError(f"Cannot read {path}: {error} (truncated or corrupt .npz?).") from None
    with archive:
        wanted = [f"{key}_{kind}" for key in SPLIT_KEYS.values() for kind in ("images", "labels")]
        missing = [key for key in wanted if key not in archive.files]
        if missing:
            raise DatasetError(
                f"{path} lacks the MedMNIST keys {missing}; found {sorted(archive.files)}."
            )
        splits = {}
        for split, key in SPLIT_KEYS.items():
            try:
                images = archive[f"{key}_images"]
                labels = archive[f"{key}_labels"]
            except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as error:
                raise DatasetError(f"Cannot read {key} arrays of {path}: {error}.") from None
            if images.ndim == 3:
                images = images[..., np.newaxis]
            if images.dtype != np.uint8:
                raise DatasetError(
                    f"{path}: {key}_images are {images.dtype}; expected uint8."
                )
            labels = np.asarray(labels).reshape(len(labels), -1)
            if labels.shape[1] != 1:
                raise DatasetError(
                    f"{path}: {key}_labels have shape {labels.shape}; expected one "
                    "label per image (multi-label MedMNIST sets are not supported)."
                )
            splits[split] = (images, labels[:, 0])
    return splits
