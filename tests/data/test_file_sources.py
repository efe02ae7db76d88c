"""IDX, MedMNIST npz, Tiny ImageNet and PAD-UFES-20 loaders on files the tests write."""

import gzip
import os

import numpy as np
import pytest

from keras_gradattn import data
from tests.data.conftest import idx_bytes
from tests.data.conftest import write_idx_dataset
from tests.data.conftest import write_medmnist_npz
from tests.data.conftest import write_pad_ufes
from tests.data.conftest import write_tiny_imagenet

pytestmark = pytest.mark.backend_independent


def _assert_disjoint_partition(splits, pooled_images):
    seen = [image.tobytes() for split in splits for image in split.images]
    assert len(seen) == len(set(seen)) == len(pooled_images)
    assert set(seen) == {image.tobytes() for image in pooled_images}


# -- IDX ----------------------------------------------------------------------


def test_idx_paper_split_pools_train_and_test(tmp_path):
    train_images, _, test_images, _ = write_idx_dataset(tmp_path / "fm")
    splits = data.load_dataset("fashion_mnist", data_dir=tmp_path / "fm", seed=42)
    assert splits.sizes() == {"train": 56, "validation": 12, "test": 12}
    assert splits.train.images.shape[1:] == (28, 28, 1)
    assert splits.train.images.dtype == np.uint8
    _assert_disjoint_partition(splits, np.concatenate([train_images, test_images])[..., None])
    again = data.load_dataset("fashion_mnist", data_dir=tmp_path / "fm", seed=42)
    np.testing.assert_array_equal(splits.validation.images, again.validation.images)
    other = data.load_dataset("fashion_mnist", data_dir=tmp_path / "fm", seed=1)
    assert not np.array_equal(splits.validation.images, other.validation.images)


def test_idx_official_split_keeps_test_and_holds_out_validation(tmp_path):
    _, _, test_images, test_labels = write_idx_dataset(tmp_path, num_train=100)
    splits = data.load_dataset("mnist", data_dir=tmp_path, split="official")
    assert splits.sizes() == {"train": 90, "validation": 10, "test": 20}
    np.testing.assert_array_equal(splits.test.images[..., 0], test_images)
    np.testing.assert_array_equal(splits.test.labels, test_labels)
    assert np.bincount(splits.validation.labels).tolist() == [1] * 10


def test_idx_found_in_named_subfolder_of_env_root(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "root" / "fashion-mnist")
    monkeypatch.setenv("KERAS_GRADATTN_DATA", str(tmp_path / "root"))
    assert len(data.load_dataset("fashion_mnist").train) == 56


def test_idx_bad_magic(tmp_path):
    write_idx_dataset(tmp_path)
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as file:
        file.write(idx_bytes(np.zeros(60, np.uint8), 0x803))  # images magic on labels
    with pytest.raises(data.DatasetError, match=r"train-labels.*magic number 0x00000803; expected 0x00000801"):
        data.load_dataset("fashion_mnist", data_dir=tmp_path)


def test_idx_truncated_gzip(tmp_path):
    write_idx_dataset(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(data.DatasetError, match=r"Cannot read .*t10k-images.*truncated or corrupt"):
        data.load_dataset("fashion_mnist", data_dir=tmp_path)


def test_idx_payload_shorter_than_header_says(tmp_path):
    write_idx_dataset(tmp_path)
    payload = idx_bytes(np.zeros((60, 28, 28), np.uint8), 0x803)[:-100]
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as file:
        file.write(payload)
    with pytest.raises(data.DatasetError, match=r"header \[60, 28, 28\] needs"):
        data.load_dataset("fashion_mnist", data_dir=tmp_path)


def test_idx_labels_out_of_range(tmp_path):
    write_idx_dataset(tmp_path)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as file:
        file.write(idx_bytes(np.full(20, 12, np.uint8), 0x801))
    with pytest.raises(data.DatasetError, match=r"test split.*labels out of range \[12, 12\]; expected 0 .. 9"):
        data.load_dataset("fashion_mnist", data_dir=tmp_path)


def test_idx_image_shape_not_matching_spec(tmp_path):
    write_idx_dataset(tmp_path)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as file:
        file.write(idx_bytes(np.zeros((60, 32, 32), np.uint8), 0x803))
    with pytest.raises(data.DatasetError, match=r"images have shape \(60, 32, 32, 1\); expected \(N, 28, 28, 1\)"):
        data.load_dataset("fashion_mnist", data_dir=tmp_path)


def test_missing_files_name_what_is_expected_and_where_to_get_it(tmp_path):
    with pytest.raises(data.DatasetError) as error:
        data.load_dataset("fashion_mnist", data_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert "train-images-idx3-ubyte.gz" in message or "IDX" in message
    assert "tfds build fashion_mnist" in message
    assert str(tmp_path) in message


# -- MedMNIST -----------------------------------------------------------------


def test_medmnist_official_splits_and_gray_to_rgb(tmp_path):
    arrays = write_medmnist_npz(tmp_path / "tissuemnist.npz", gray=True)
    splits = data.load_dataset("tissuemnist", data_dir=tmp_path)
    assert splits.sizes() == {"train": 40, "validation": 10, "test": 20}
    np.testing.assert_array_equal(splits.validation.images[..., 0], arrays["val_images"])
    np.testing.assert_array_equal(splits.test.labels, arrays["test_labels"][:, 0])
    assert splits.train.labels.dtype == np.int32
    # split="paper" keeps the official splits for MedMNIST.
    paper = data.load_dataset("tissuemnist", data_dir=tmp_path / "tissuemnist.npz", split="paper")
    assert paper.sizes() == splits.sizes()
    batch = data.make_pydataset(splits.test, splits.spec, batch_size=4)[0][0]
    assert batch.shape == (4, 64, 64, 3)
    pixels = data.denormalize(batch, splits.spec)  # ImageNet stats differ per channel
    np.testing.assert_allclose(pixels[..., 0], pixels[..., 2], atol=1e-6)


def test_medmnist_rgb(tmp_path):
    write_medmnist_npz(tmp_path / "bloodmnist.npz", gray=False)
    splits = data.load_dataset("bloodmnist", data_dir=tmp_path)
    assert splits.train.images.shape == (40, 28, 28, 3)


def test_medmnist_missing_keys(tmp_path):
    write_medmnist_npz(tmp_path / "bloodmnist.npz", gray=False, val_labels=None)
    with pytest.raises(data.DatasetError, match=r"lacks the MedMNIST keys \['val_labels'\]"):
        data.load_dataset("bloodmnist", data_dir=tmp_path)


def test_medmnist_corrupt_file(tmp_path):
    (tmp_path / "bloodmnist.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(data.DatasetError, match="Cannot read .*bloodmnist.npz"):
        data.load_dataset("bloodmnist", data_dir=tmp_path)


def test_medmnist_wrong_image_size(tmp_path):
    write_medmnist_npz(tmp_path / "bloodmnist.npz", gray=False, size=64)
    with pytest.raises(data.DatasetError, match=r"expected \(N, 28, 28, 3\) for bloodmnist"):
        data.load_dataset("bloodmnist", data_dir=tmp_path)


def test_medmnist_labels_out_of_range(tmp_path):
    write_medmnist_npz(tmp_path / "bloodmnist.npz", gray=False, num_classes=9)
    with pytest.raises(data.DatasetError, match=r"labels out of range \[0, 8\]; expected 0 .. 7"):
        data.load_dataset("bloodmnist", data_dir=tmp_path)


# -- Tiny ImageNet --------------------------------------------------------------


def test_tiny_imagenet_pools_train_and_val(tmp_path):
    write_tiny_imagenet(tmp_path, train_per_class=1, num_val=10)
    splits = data.load_dataset("tiny_imagenet", data_dir=tmp_path, seed=42)
    assert splits.sizes() == {"train": 148, "validation": 31, "test": 31}
    assert splits.train.images.shape[1:] == (64, 64, 3)
    official = data.load_dataset("tiny_imagenet", data_dir=tmp_path / "tiny-imagenet-200", split="official")
    assert len(official.test) == 10
    # wnids.txt is written in reverse order: labels follow the sorted wnids,
    # so val image i (wnid index 199 - i in the file) has label i... reversed.
    assert official.test.labels.tolist() == [199 - i for i in range(10)]


def test_tiny_imagenet_annotation_with_unknown_wnid(tmp_path):
    folder = write_tiny_imagenet(tmp_path, num_val=2)
    with open(os.path.join(folder, "val", "val_annotations.txt"), "a") as file:
        file.write("val_9.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(data.DatasetError, match=r"val_annotations.txt line 3.*wnids.txt"):
        data.load_dataset("tiny_imagenet", data_dir=tmp_path)


# -- PAD-UFES-20 --------------------------------------------------------------


def test_pad_ufes_reads_metadata_and_resizes(tmp_path):
    write_pad_ufes(tmp_path, per_class=5)
    splits = data.load_dataset("pad_ufes_20", data_dir=tmp_path, seed=0)
    assert splits.sizes() == {"train": 22, "validation": 4, "test": 4}
    assert splits.train.images.shape[1:] == (224, 224, 3)
    labels = np.concatenate([split.labels for split in splits])
    assert np.bincount(labels).tolist() == [5] * 6


def test_pad_ufes_unknown_diagnostic(tmp_path):
    write_pad_ufes(tmp_path, diagnostics=["BCC", "XYZ"])
    with pytest.raises(data.DatasetError, match=r"diagnostic labels out of range \['XYZ'\]"):
        data.load_dataset("pad_ufes_20", data_dir=tmp_path)


def test_pad_ufes_missing_image(tmp_path):
    folder = write_pad_ufes(tmp_path, per_class=1)
    os.remove(os.path.join(folder, "images", "imgs_part_1", "PAT_0_0_0.png"))
    with pytest.raises(data.DatasetError, match=r"1 of 6 images .* e.g. PAT_0_0_0.png"):
        data.load_dataset("pad_ufes_20", data_dir=tmp_path)


def test_pad_ufes_has_no_official_split(tmp_path):
    with pytest.raises(data.DatasetError, match="split='paper'"):
        data.load_dataset("pad_ufes_20", data_dir=tmp_path, split="official")
