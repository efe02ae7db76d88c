"""The real FashionMNIST, from the four IDX files as Debian's dataset-fashion-mnist ships them."""

import os

import numpy as np
import pytest

from keras_gradattn import data

FOLDER = os.environ.get("FASHION_MNIST_IDX_DIR", "/usr/share/datasets/fashion-mnist")

pytestmark = [
    pytest.mark.backend_independent,
    pytest.mark.skipif(
    not os.path.isfile(os.path.join(FOLDER, "train-images-idx3-ubyte.gz")),
    reason=f"real FashionMNIST IDX files not in {FOLDER} (apt-get install dataset-fashion-mnist, "
    "or set FASHION_MNIST_IDX_DIR)",
),
]


def test_real_fashion_mnist_paper_split_and_statistics():
    splits = data.load_dataset("fashion_mnist", data_dir=FOLDER, split="paper", seed=42)
    assert splits.sizes() == {"train": 49_000, "validation": 10_500, "test": 10_500}
    pooled = np.concatenate([split.images for split in splits])
    assert pooled.shape == (70_000, 28, 28, 1)
    pixels = pooled.astype(np.float32) / 255.0
    mean, std = float(pixels.mean()), float(pixels.std())
    assert abs(mean - 0.2860) < 0.002 and abs(std - 0.3530) < 0.002, (mean, std)
    for split in splits:
        assert split.class_counts().sum() == len(split)
        assert split.class_counts().min() > 0.08 * len(split)  # ~10% per class
    # Disjoint: no training image appears in the test split (compare bytes).
    train = {image.tobytes() for image in splits.train.images[:5000]}
    assert not train & {image.tobytes() for image in splits.test.images}
    # The normalised evaluation batch is centred near 0 with unit spread.
    images, labels = data.make_pydataset(splits.test, splits.spec, 2048)[0]
    assert abs(float(images.mean())) < 0.05 and abs(float(images.std()) - 1) < 0.05
    assert labels.dtype == np.int32
    official = data.load_dataset("fashion_mnist", data_dir=FOLDER, split="official")
    assert official.sizes() == {"train": 54_000, "validation": 6_000, "test": 10_000}
