import dataclasses

import numpy as np
import pytest

from keras_gradattn import data
from keras_gradattn.data import splits as split_lib

pytestmark = pytest.mark.backend_independent

PAPER_DATASETS = (
    "tiny_imagenet", "cifar10", "svhn", "fashion_mnist",
    "tissuemnist", "bloodmnist", "pcam", "pad_ufes_20",
)  # fmt: skip


def test_registry_lists_paper_datasets_and_extras():
    names = data.list_datasets()
    assert names == sorted(names)
    for name in PAPER_DATASETS + ("cifar100", "mnist", "digits", "synthetic"):
        assert name in names


@pytest.mark.parametrize(
    "name, classes, shape",
    [
        ("tiny_imagenet", 200, (64, 64, 3)),
        ("cifar10", 10, (32, 32, 3)),
        ("cifar100", 100, (32, 32, 3)),
        ("svhn", 10, (32, 32, 3)),
        ("fashion_mnist", 10, (28, 28, 1)),
        ("tissuemnist", 8, (64, 64, 3)),
        ("bloodmnist", 8, (64, 64, 3)),
        ("pcam", 2, (96, 96, 3)),
        ("pad_ufes_20", 6, (224, 224, 3)),
        ("digits", 10, (32, 32, 1)),
    ],
)
def test_specs_match_the_paper_table(name, classes, shape):
    spec = data.get_dataset_spec(name)
    assert spec.num_classes == classes
    assert spec.input_shape == shape
    assert len(spec.mean) == len(spec.std) == shape[-1]
    # The ImageNet stem needs at least 17x17 inputs.
    assert min(spec.input_shape[:2]) >= 17


def test_reference_normalisation_statistics():
    assert data.get_dataset_spec("cifar10").mean == (0.4914, 0.4822, 0.4465)
    assert data.get_dataset_spec("svhn").std == (0.1980, 0.2010, 0.1970)
    assert data.get_dataset_spec("fashion_mnist").mean == (0.2860,)
    assert data.get_dataset_spec("pcam").mean == (0.485, 0.456, 0.406)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown dataset 'cifar11'.*cifar10"):
        data.get_dataset_spec("cifar11")
    with pytest.raises(data.DatasetError, match="Unknown dataset"):
        data.load_dataset("imagenet21k")


def test_spec_rejects_statistics_for_the_wrong_channel_count():
    spec = data.get_dataset_spec("cifar10")
    with pytest.raises(ValueError, match="one value per channel"):
        dataclasses.replace(spec, mean=(0.5,))


@pytest.mark.parametrize(
    "total, expected",
    [(70_000, [49_000, 10_500, 10_500]), (60_000, [42_000, 9_000, 9_000]),
     (630_420, [441_294, 94_563, 94_563]), (110_000, [77_000, 16_500, 16_500]),
     (2_298, [1_609, 345, 344])],
)  # fmt: skip
def test_fraction_lengths_follow_torch_random_split(total, expected):
    assert split_lib.fraction_lengths(total) == expected


def test_random_split_is_a_seeded_partition():
    first = split_lib.random_split_indices(1000, seed=42)
    again = split_lib.random_split_indices(1000, seed=42)
    other = split_lib.random_split_indices(1000, seed=7)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert sorted(np.concatenate(first).tolist()) == list(range(1000))


def test_stratified_holdout_takes_a_share_of_every_class():
    labels = np.repeat(np.arange(5), 20)
    kept, held_out = split_lib.stratified_holdout_indices(labels, 0.1, seed=0)
    assert len(np.intersect1d(kept, held_out)) == 0
    assert len(kept) + len(held_out) == 100
    assert np.bincount(labels[held_out]).tolist() == [2] * 5


def test_synthetic_is_deterministic_configurable_and_disjoint():
    splits = data.load_dataset("synthetic", seed=3, num_examples=200, image_size=24, channels=1)
    again = data.load_dataset("synthetic", seed=3, num_examples=200, image_size=24, channels=1)
    assert splits.sizes() == {"train": 140, "validation": 30, "test": 30}
    assert splits.spec.input_shape == (24, 24, 1)
    np.testing.assert_array_equal(splits.train.images, again.train.images)
    np.testing.assert_array_equal(splits.test.labels, again.test.labels)
    other = data.load_dataset("synthetic", seed=4, num_examples=200, image_size=24, channels=1)
    assert not np.array_equal(splits.train.images, other.train.images)
    rows = {image.tobytes() for split in splits for image in split.images}
    assert len(rows) == 200  # noise makes every image distinct: no overlap
    with pytest.raises(ValueError, match="Unknown synthetic options"):
        data.load_dataset("synthetic", num_exmples=10)


def test_synthetic_classes_are_separable_by_their_mean_pattern():
    splits = data.load_dataset("synthetic", num_examples=400, seed=0)
    train, test = splits.train, splits.test
    prototypes = np.stack(
        [train.images[train.labels == c].mean(0) for c in range(splits.spec.num_classes)]
    )
    distances = ((test.images[:, None].astype(float) - prototypes[None]) ** 2).sum((2, 3, 4))
    assert (distances.argmin(1) == test.labels).mean() > 0.95


def test_digits_paper_split_and_official_split_is_refused():
    splits = data.load_dataset("digits", seed=42)
    assert splits.sizes() == {"train": 1258, "validation": 270, "test": 269}
    assert splits.train.images.shape[1:] == (8, 8, 1)
    assert splits.train.images.max() == 255
    assert set(np.unique(splits.train.labels)) == set(range(10))
    with pytest.raises(data.DatasetError, match="no official test split.*split='paper'"):
        data.load_dataset("digits", split="official")


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_max_train_samples_must_be_positive(bad):
    with pytest.raises(ValueError, match=f"max_train_samples must be a positive integer.*{bad!r}"):
        data.load_dataset("digits", max_train_samples=bad)


def test_max_train_samples_subsamples_train_only():
    splits = data.load_dataset("digits", max_train_samples=100, seed=1)
    assert splits.sizes() == {"train": 100, "validation": 270, "test": 269}
    again = data.load_dataset("digits", max_train_samples=100, seed=1)
    np.testing.assert_array_equal(splits.train.images, again.train.images)


def test_unknown_split_policy():
    with pytest.raises(ValueError, match=r"Unknown split 'pooled'.*'paper', 'official'"):
        data.load_dataset("digits", split="pooled")
