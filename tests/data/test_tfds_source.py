"""TFDS loaders against `tfds.testing.mock_data`; nothing may be downloaded."""

import time

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets", reason="tensorflow-datasets not installed")

from keras_gradattn import data  # noqa: E402

pytestmark = pytest.mark.backend_independent

PER_SPLIT = 20


@pytest.fixture
def mocked_tfds(monkeypatch):
    """Mocked tfds data; any attempt to download or prepare fails the test."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the data layer tried to download or prepare a dataset")

    with tfds.testing.mock_data(num_examples=PER_SPLIT):
        monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", forbidden)
        monkeypatch.setattr(tfds.download.DownloadManager, "download", forbidden)
        yield


@pytest.mark.parametrize(
    "name, num_official, classes",
    [("cifar10", 2, 10), ("cifar100", 2, 100), ("svhn", 3, 10), ("mnist", 2, 10)],
)
def test_pooled_paper_split(tmp_path, mocked_tfds, name, num_official, classes):
    splits = data.load_dataset(name, data_dir=tmp_path, seed=42)
    pooled = PER_SPLIT * num_official
    from keras_gradattn.data.splits import fraction_lengths

    train, val, test = fraction_lengths(pooled)
    assert splits.sizes() == {"train": train, "validation": val, "test": test}
    for split in splits:
        assert split.images.dtype == np.uint8
        assert split.images.shape[1:] == data.get_dataset_spec(name).stored_shape
        assert split.labels.min() >= 0 and split.labels.max() < classes


def test_svhn_pools_extra(tmp_path, mocked_tfds):
    paper = data.load_dataset("svhn", data_dir=tmp_path)
    official = data.load_dataset("svhn", data_dir=tmp_path, split="official")
    assert sum(paper.sizes().values()) == 3 * PER_SPLIT
    # official: train (minus a 10% validation hold-out) and test; extra unused.
    assert len(official.test) == PER_SPLIT
    assert len(official.train) + len(official.validation) == PER_SPLIT


def test_fashion_mnist_falls_back_to_tfds_without_idx_files(tmp_path, mocked_tfds):
    splits = data.load_dataset("fashion_mnist", data_dir=tmp_path)
    assert sum(splits.sizes().values()) == 2 * PER_SPLIT
    assert splits.train.images.shape[1:] == (28, 28, 1)


def test_pcam_is_streamed_with_official_splits(tmp_path, mocked_tfds):
    splits = data.load_dataset("pcam", data_dir=tmp_path, max_train_samples=7)
    assert splits.sizes() == {"train": 7, "validation": PER_SPLIT, "test": PER_SPLIT}
    assert not splits.train.in_memory
    pipeline = data.make_pipeline(splits.validation, splits.spec, batch_size=8, pipeline="tf.data")
    batches = list(pipeline)
    assert [int(x.shape[0]) for x, _ in batches] == [8, 8, 4]
    assert batches[0][0].shape[1:] == (96, 96, 3)
    train = data.make_pipeline(splits.train, splits.spec, batch_size=4, training=True)
    assert sum(int(y.shape[0]) for _, y in train) == 7
    with pytest.raises(data.DatasetError, match="streamed.*pipeline='tf.data'"):
        data.make_pydataset(splits.test, splits.spec, batch_size=4)


def test_unprepared_dataset_fails_fast_without_download(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", forbidden)
    start = time.perf_counter()
    with pytest.raises(data.DatasetError) as error:
        data.load_dataset("cifar10", data_dir=tmp_path)
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert "\n" not in message
    assert "tfds build cifar10" in message and str(tmp_path) in message


def test_discovery_without_data_dir_names_the_searched_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_GRADATTN_DATA", str(tmp_path / "mine"))
    with pytest.raises(data.DatasetError, match=r"svhn: no data found.*KERAS_GRADATTN_DATA.*mine.*tensorflow_datasets"):
        data.load_dataset("svhn")
