"""A stand-in MedMNIST file, so the MedMNIST npz reader and its pipeline can
be timed on a machine without the real download."""

import os

import numpy as np

FAKE_MEDMNIST_DATASET = "bloodmnist"


def write_fake_medmnist_npz(folder, num_train=2048):
    """Writes `<folder>/bloodmnist.npz` in the MedMNIST format (random 28x28
    RGB images, 8 classes; 256 validation and 256 test images) and returns its
    path. Only its shapes and dtypes are BloodMNIST's: its throughput is
    meaningful, its images are not."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in (("train", num_train), ("val", 256), ("test", 256)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(count, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % 8).reshape(-1, 1).astype(np.uint8)
    path = os.path.join(folder, f"{FAKE_MEDMNIST_DATASET}.npz")
    np.savez_compressed(path, **arrays)
    return path
