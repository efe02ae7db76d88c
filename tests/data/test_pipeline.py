"""Pipelines: shapes, normalisation, order, determinism, value range, defect 1."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import keras

from keras_gradattn import data
from keras_gradattn.data import pipeline as pipeline_module
from keras_gradattn.data import registry
from keras_gradattn.data.augmentation import Augmenter
from keras_gradattn.data.splits import DatasetSplit
from keras_gradattn.utils.dependencies import module_available

HAS_TF = module_available("tensorflow")
PIPELINES = ["pydataset"] + (["tf.data"] if HAS_TF else [])


def _batches(dataset, count=None):
    result = []
    if isinstance(dataset, keras.utils.PyDataset):
        for index in range(len(dataset) if count is None else count):
            images, labels = dataset[index]
            result.append((np.asarray(images), np.asarray(labels)))
    else:
        for images, labels in dataset.take(-1 if count is None else count):
            result.append((images.numpy(), labels.numpy()))
    return result


def _extreme_split(spec, num_images=16, seed=0):
    """Images at the edges of the value range: all black, all white, salt and pepper."""
    rng = np.random.default_rng(seed)
    shape = (num_images,) + tuple(spec.stored_shape)
    images = (rng.integers(0, 2, size=shape) * 255).astype(np.uint8)
    images[0] = 0
    images[1] = 255
    labels = np.arange(num_images) % spec.num_classes
    return DatasetSplit("train", spec.num_classes, images=images, labels=labels)


@pytest.fixture(scope="module")
def synthetic():
    return data.load_dataset("synthetic", num_examples=100, image_size=20, seed=0)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_batches_are_normalised_float32_with_int32_labels(synthetic, pipeline):
    spec = synthetic.spec
    dataset = data.make_pipeline(synthetic.validation, spec, batch_size=8, pipeline=pipeline)
    batches = _batches(dataset)
    assert [len(labels) for _, labels in batches] == [8, 7]  # 15 validation examples
    images, labels = batches[0]
    assert images.dtype == np.float32 and images.shape == (8, 20, 20, 3)
    assert labels.dtype == np.int32
    expected = (synthetic.validation.images[:8] / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(images, expected, atol=1e-5)
    # Evaluation order is the split's order.
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), synthetic.validation.labels)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_statistics_are_applied_per_channel(pipeline):
    spec = data.get_dataset_spec("cifar10")
    pixel = np.array([10, 128, 250], np.uint8)
    split = DatasetSplit("test", 10, images=np.tile(pixel, (2, 32, 32, 1)), labels=[0, 1])
    images, _ = _batches(data.make_pipeline(split, spec, batch_size=2, pipeline=pipeline))[0]
    expected = (pixel / 255.0 - np.array(spec.mean)) / np.array(spec.std)
    np.testing.assert_allclose(images[0, 5, 7], expected, atol=1e-5)
    assert len(set(np.round(images[0, 5, 7], 4))) == 3


def test_tf_data_and_pydataset_agree_on_evaluation_batches():
    if not HAS_TF:
        pytest.skip("TensorFlow not installed: only the PyDataset pipeline exists")
    spec = data.get_dataset_spec("bloodmnist")  # 28 -> 64 resize
    split = _extreme_split(spec, 6)
    split.images[2:] = np.random.default_rng(1).integers(0, 256, split.images[2:].shape, np.uint8)
    tf_images = _batches(data.make_pipeline(split, spec, 6, pipeline="tf.data"))[0][0]
    py_images = _batches(data.make_pipeline(split, spec, 6, pipeline="pydataset"))[0][0]
    np.testing.assert_allclose(tf_images, py_images, atol=1e-4)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_training_batches_repeat_with_the_seed(pipeline):
    splits = data.load_dataset("synthetic", num_examples=60, image_size=16, seed=0)
    spec = dataclasses.replace(splits.spec, augmentation=registry.FLIP_PAD_CROP)

    def first_batches(seed):
        dataset = data.make_pipeline(splits.train, spec, 8, training=True, seed=seed, pipeline=pipeline)
        return _batches(dataset, 2)

    first, again, other = first_batches(5), first_batches(5), first_batches(6)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_allclose(x1, x2, atol=1e-6)
    assert not np.array_equal(first[0][1], other[0][1])
    # Shuffled: not the split's order.
    assert not np.array_equal(first[0][1], splits.train.labels[:8])


def test_pydataset_reshuffles_every_epoch():
    splits = data.load_dataset("synthetic", num_examples=60, image_size=16, seed=0)
    dataset = data.make_pydataset(splits.train, splits.spec, 21, training=True, seed=0)
    epoch_0 = dataset[0][1]
    dataset.on_epoch_end()
    assert not np.array_equal(epoch_0, dataset[0][1])
    assert sorted(np.concatenate([dataset[0][1], dataset[1][1]])) == sorted(splits.train.labels)


def assert_within_unit_range(images_01, tolerance=1e-5):
    """The check the pipeline must pass: de-normalised values stay in [0, 1]."""
    low, high = float(np.min(images_01)), float(np.max(images_01))
    assert low >= -tolerance and high <= 1 + tolerance, f"values in [{low}, {high}]"


@pytest.mark.parametrize("recipe", [r for r in registry.AUGMENTATION_RECIPES if r != "none"])
def test_each_augmentation_recipe_keeps_values_in_range(recipe):
    augmenter = Augmenter(recipe, seed=3)
    spec = data.get_dataset_spec("cifar10")
    images = _extreme_split(spec, 16).images.astype("float32") / 255.0
    changed = False
    for _ in range(10):
        out = keras.ops.convert_to_numpy(augmenter(keras.ops.convert_to_tensor(images)))
        assert out.shape == images.shape
        assert_within_unit_range(out)  # no clip here: the layers themselves
        changed |= not np.allclose(out, images)
    assert changed


@pytest.mark.parametrize("recipe", [r for r in registry.AUGMENTATION_RECIPES if r != "none"])
def test_each_augmentation_recipe_changes_brightness_by_bounded_amounts(recipe):
    # The range check alone misses a colour layer told the wrong value range
    # when a later layer clips: images would saturate, in range. The largest
    # mean shift the recipes allow is black fill of up to ~23% of the pixels
    # (pad-4 crop) or +-0.2 brightness.
    augmenter = Augmenter(recipe, seed=5)
    rng = np.random.default_rng(0)
    images = rng.uniform(0.3, 0.7, size=(32, 32, 32, 3)).astype("float32")
    for _ in range(3):
        out = keras.ops.convert_to_numpy(augmenter(keras.ops.convert_to_tensor(images)))
        shift = np.abs(out.mean(axis=(1, 2, 3)) - images.mean(axis=(1, 2, 3)))
        assert shift.max() < 0.25, f"mean shift {shift.max():.3f}"


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("name", ["cifar10", "fashion_mnist", "tissuemnist"])
def test_augmented_training_pipeline_never_leaves_the_value_range(name, pipeline):
    spec = data.get_dataset_spec(name)
    split = _extreme_split(spec, 16)
    dataset = data.make_pipeline(split, spec, 16, training=True, seed=0, pipeline=pipeline)
    for _ in range(5):  # epochs: new draws each time
        for images, _ in _batches(dataset):
            assert_within_unit_range(data.denormalize(images, spec))
        if isinstance(dataset, keras.utils.PyDataset):
            dataset.on_epoch_end()


def test_the_range_check_catches_a_broken_augmentation():
    # A plausible bug: colour jitter told the images are 0..255 while they
    # are 0..1, so brightness shifts by up to +-25.5.
    broken = keras.layers.RandomBrightness(0.1, value_range=(0, 255), seed=0)
    images = np.full((16, 8, 8, 3), 0.5, np.float32)
    out = keras.ops.convert_to_numpy(broken(images, training=True))
    with pytest.raises(AssertionError, match="values in"):
        assert_within_unit_range(out)


def _defect_1_training_batch(images_uint8, spec):
    """The reference's defect 1: normalise, wrap back to uint8, normalise again."""
    once = (images_uint8 / 255.0 - np.array(spec.mean)) / np.array(spec.std)
    wrapped = np.mod(np.round(once * 255.0), 256).astype(np.uint8)
    return data.normalize(wrapped / 255.0, spec)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_training_images_are_normalised_exactly_once(pipeline):
    # Defect 1 made training images differ from the same images at test time.
    # With augmentation off, training batches must equal evaluation batches.
    spec = data.get_dataset_spec("cifar10")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 32, 32, 3), np.uint8)
    # One image per label, so sorting by label undoes the training shuffle.
    split = DatasetSplit("train", 10, images=images, labels=np.arange(10))
    train = _batches(data.make_pipeline(split, spec, 10, training=True, augment=False, pipeline=pipeline))[0]
    evaluation = _batches(data.make_pipeline(split, spec, 10, pipeline=pipeline))[0]
    assert not np.array_equal(train[1], evaluation[1])
    np.testing.assert_allclose(train[0][np.argsort(train[1])], evaluation[0], atol=1e-5)
    # The same comparison exposes the defect.
    corrupted = _defect_1_training_batch(images, spec)
    assert np.abs(corrupted - evaluation[0]).max() > 1.0


@pytest.mark.parametrize("bad", [0, -1, 1.5, None])
def test_batch_size_must_be_positive(synthetic, bad):
    with pytest.raises(ValueError, match=f"batch_size must be a positive integer, got {bad!r}"):
        data.make_pipeline(synthetic.train, synthetic.spec, batch_size=bad)


def test_unknown_pipeline_kind(synthetic):
    with pytest.raises(ValueError, match=r"Unknown pipeline 'torch'.*'pydataset'"):
        data.make_pipeline(synthetic.train, synthetic.spec, pipeline="torch")


def test_split_and_spec_must_agree(synthetic):
    with pytest.raises(data.DatasetError, match="has 10 classes but the spec 'tiny_imagenet' has 200"):
        data.make_pipeline(synthetic.train, data.get_dataset_spec("tiny_imagenet"))


class _BatchClock:
    """A stand-in for `time.perf_counter`: every batch delivered takes 1 s."""

    def __init__(self):
        self.seconds = 0.0

    def perf_counter(self):
        return self.seconds


BATCH_SIZES = (10, 10, 5)  # one epoch: 25 images


def _batch(clock, index):
    clock.seconds += 1.0
    size = BATCH_SIZES[index]
    return np.zeros((size, 4, 4, 3), np.float32), np.zeros(size, np.int32)


class _ClockedPyDataset(keras.utils.PyDataset):
    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def __len__(self):
        return len(BATCH_SIZES)

    def __getitem__(self, index):
        return _batch(self.clock, index)


class _ClockedIterable:
    """Iterates like a tf.data dataset: every pass is one epoch."""

    def __init__(self, clock):
        self.clock = clock

    def __iter__(self):
        return (_batch(self.clock, index) for index in range(len(BATCH_SIZES)))


@pytest.mark.parametrize("kind", [_ClockedPyDataset, _ClockedIterable])
@pytest.mark.parametrize(
    "num_batches, warmup_batches, expected",
    [
        # Warm-up 10, 10 untimed; timed: 5, then 10 after the epoch restarts.
        (2, 2, 15 / 2),
        # Timed: 10, 10, 5, 10.
        (4, 0, 35 / 4),
        # Warm-up 10; timed: 10, 5, then a whole epoch 10, 10, 5.
        (5, 1, 40 / 5),
    ],
)
def test_throughput_helper_counts_images(kind, num_batches, warmup_batches, expected, monkeypatch):
    clock = _BatchClock()
    monkeypatch.setattr(pipeline_module, "time", clock)
    rate = data.measure_pipeline_throughput(kind(clock), num_batches, warmup_batches)
    assert rate == pytest.approx(expected)


def test_throughput_helper_rejects_no_batches(synthetic):
    dataset = data.make_pydataset(synthetic.train, synthetic.spec, 10)
    with pytest.raises(ValueError, match="num_batches must be > 0"):
        data.measure_pipeline_throughput(dataset, num_batches=0)


def test_file_loaders_and_pydataset_import_no_tensorflow(tmp_path):
    from tests.data.conftest import write_idx_dataset
    from tests.data.conftest import write_medmnist_npz

    write_idx_dataset(tmp_path)
    write_medmnist_npz(tmp_path / "bloodmnist.npz", gray=False)
    code = (
        "import sys\n"
        "from keras_gradattn import data\n"
        f"for name, training in (('fashion_mnist', True), ('bloodmnist', False)):\n"
        f"    s = data.load_dataset(name, data_dir={str(tmp_path)!r})\n"
        "    data.make_pydataset(s.train, s.spec, 4, training=training)[0]\n"
        "s = data.load_dataset('digits'); data.load_dataset('synthetic', num_examples=30)\n"
        "assert data.make_pipeline(s.train, s.spec, 4, pipeline='pydataset')[0][0].shape == (4, 32, 32, 1)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    backend = "jax" if keras.backend.backend() == "tensorflow" else keras.backend.backend()
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
