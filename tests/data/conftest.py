"""Writers for tiny datasets in their official on-disk formats."""

import csv
import gzip
import os

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def isolated_data_discovery(monkeypatch, tmp_path):
    """No test may find data through the environment of the machine it runs on."""
    monkeypatch.delenv("KERAS_GRADATTN_DATA", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds_here"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def idx_bytes(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(
        int(dim).to_bytes(4, "big") for dim in array.shape
    )
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write_idx_dataset(folder, num_train=60, num_test=20, num_classes=10, seed=0):
    """The four MNIST-format .gz files; returns `(train_images, train_labels, test_images, test_labels)`."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    arrays = {}
    for prefix, count in (("train", num_train), ("t10k", num_test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % num_classes).astype(np.uint8)
        with gzip.open(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), "wb") as file:
            file.write(idx_bytes(images, 0x803))
        with gzip.open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as file:
            file.write(idx_bytes(labels, 0x801))
        arrays[prefix] = (images, labels)
    return arrays["train"] + arrays["t10k"]


def write_medmnist_npz(path, gray, sizes=(40, 10, 20), num_classes=8, seed=0, size=28, **overrides):
    rng = np.random.default_rng(seed)
    shape = (size, size) if gray else (size, size, 3)
    arrays = {}
    for key, count in zip(("train", "val", "test"), sizes):
        arrays[f"{key}_images"] = rng.integers(0, 256, size=(count,) + shape, dtype=np.uint8)
        arrays[f"{key}_labels"] = (np.arange(count) % num_classes).reshape(-1, 1).astype(np.uint8)
    arrays.update(overrides)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    np.savez_compressed(path, **arrays)
    return arrays


def _save_image(path, array):
    from PIL import Image

    Image.fromarray(array).save(path)


def write_tiny_imagenet(root, num_classes=200, train_per_class=1, num_val=10, seed=0):
    """An official-layout tiny-imagenet-200 tree with tiny JPEG files."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "tiny-imagenet-200")
    # wnids.txt deliberately unsorted: labels must follow the sorted order.
    wnids = [f"n{index:08d}" for index in range(num_classes)][::-1]
    os.makedirs(os.path.join(folder, "val", "images"), exist_ok=True)
    with open(os.path.join(folder, "wnids.txt"), "w") as file:
        file.write("\n".join(wnids) + "\n")
    for wnid in wnids:
        images_dir = os.path.join(folder, "train", wnid, "images")
        os.makedirs(images_dir)
        for index in range(train_per_class):
            image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
            _save_image(os.path.join(images_dir, f"{wnid}_{index}.JPEG"), image)
    lines = []
    for index in range(num_val):
        name = f"val_{index}.JPEG"
        _save_image(os.path.join(folder, "val", "images", name), rng.integers(0, 256, (64, 64, 3), np.uint8))
        lines.append(f"{name}\t{wnids[index % num_classes]}\t0\t0\t63\t63")
    with open(os.path.join(folder, "val", "val_annotations.txt"), "w") as file:
        file.write("\n".join(lines) + "\n")
    return folder


PAD_UFES_CODES = ("ACK", "BCC", "MEL", "NEV", "SCC", "SEK")


def write_pad_ufes(root, per_class=3, seed=0, diagnostics=None):
    """metadata.csv + PNGs of odd sizes split over imgs_part_1/ and imgs_part_2/."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "PAD-UFES-20")
    os.makedirs(folder)
    diagnostics = diagnostics or [code for code in PAD_UFES_CODES for _ in range(per_class)]
    rows = []
    for index, diagnostic in enumerate(diagnostics):
        part = os.path.join(folder, "images", f"imgs_part_{index % 2 + 1}")
        os.makedirs(part, exist_ok=True)
        name = f"PAT_{index}_{index}_{index}.png"
        height, width = 30 + index, 40
        _save_image(os.path.join(part, name), rng.integers(0, 256, (height, width, 3), np.uint8))
        rows.append({"patient_id": f"PAT_{index}", "img_id": name, "diagnostic": diagnostic})
    with open(os.path.join(folder, "metadata.csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["patient_id", "img_id", "diagnostic"])
        writer.writeheader()
        writer.writerows(rows)
    return folder
