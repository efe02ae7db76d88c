"""The device data path: index batches in the host pipeline's order, the same
preprocessing, augmentation with the same statistics, and a wrapper that
saves and checkpoints the classifier, never the images."""

import dataclasses

import h5py
import keras
import numpy as np
import pytest

from keras_gradattn import data
from keras_gradattn.data import registry
from keras_gradattn.data.splits import DatasetSplit
from keras_gradattn.data.splits import DatasetSplits
from keras_gradattn.models import create_model
from keras_gradattn.utils import trained_classifier
from testing_utils import SMALL_BACKBONE

PIPELINES = ["tf.data", "pydataset"]
# The stored shape each recipe is tested at (small: the recipes do not
# depend on the size; the dermoscopy one is 224x224 in the paper).
RECIPE_SHAPES = {
    registry.FLIP_PAD_CROP: (32, 32, 3),
    registry.FLIP_ROTATE_TRANSLATE: (28, 28, 1),
    registry.ROTATE_TRANSLATE: (28, 28, 1),
    registry.MEDMNIST_JITTER: (28, 28, 3),
    registry.DERMOSCOPY_JITTER_CROP: (32, 32, 3),
}


def _spec_with_recipe(recipe):
    """A registered dataset's spec that uses `recipe`, at a small size."""
    spec = next(spec for spec in map(data.get_dataset_spec, data.list_datasets()) if spec.augmentation == recipe)
    shape = RECIPE_SHAPES[recipe]
    return dataclasses.replace(spec, stored_shape=shape, input_shape=shape[:2] + (spec.input_shape[-1],))


def _structured_images(count, shape, seed=0):
    """Images whose augmentations are visible in simple statistics: a
    left-to-right ramp times a random brightness, plus a bright square at a
    random place (flips and shifts move its centroid; rotations, crops and
    fills change the rest)."""
    rng = np.random.default_rng(seed)
    height, width, channels = shape
    ramp = np.linspace(0.2, 0.8, width)[None, :, None]
    images = np.tile(ramp, (height, 1, channels))[None] * rng.uniform(0.5, 1.0, (count, 1, 1, channels))
    for image in images:
        top, left = rng.integers(0, height - 6), rng.integers(0, width // 2)
        image[top : top + 6, left : left + 6] = 1.0
    return np.round(images * 255).astype(np.uint8)


def _splits(spec, count=96, seed=0):
    """Train, validation and test splits of structured images; each label
    is the image's row in its split, so batches say which images they hold."""
    def split(name, offset):
        images = _structured_images(count, spec.stored_shape, seed + offset)
        return DatasetSplit(name, spec.num_classes, images=images, labels=np.arange(count) % spec.num_classes)

    return DatasetSplits(split("train", 0), split("validation", 1), split("test", 2), spec=spec)


def _tiny_classifier(spec):
    return create_model(
        "resnet18", num_classes=spec.num_classes, input_shape=tuple(spec.input_shape),
        **SMALL_BACKBONE, stage_blocks=(1, 1, 1, 1),
    )  # fmt: skip


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("shard", [(0, 1), (1, 2)])
def test_index_batches_are_the_host_pipelines_batches(pipeline, shard):
    spec = data.get_dataset_spec("digits")
    splits = data.load_dataset("digits")
    model = data.DeviceDataModel.for_splits(_tiny_classifier(spec), splits, seed=3)
    assert model.offsets == {"train": 0, "validation": len(splits.train), "test": len(splits.train) + len(
        splits.validation)}
    for split, training in ((splits.train, True), (splits.validation, False)):
        arguments = dict(batch_size=32, training=training, seed=5, pipeline=pipeline, shard=shard)
        host = list(_first_batches(data.make_pipeline(split, spec, **arguments), 4))
        indices = list(_first_batches(data.make_index_pipeline(split, offset=model.offsets[split.name],
                                                               **arguments), 4))  # fmt: skip
        assert len(host) == len(indices) == 4
        for (images, labels), (rows, index_labels) in zip(host, indices):
            np.testing.assert_array_equal(np.asarray(labels), np.asarray(index_labels))
            assert np.asarray(rows).dtype == np.int32 and len(rows) == 32 // shard[1]
            # Digits has no augmentation: the device's preprocessing (gather,
            # scale, resize 8x8 -> 32x32, normalise) gives the host's images.
            device_images = keras.ops.convert_to_numpy(model.preprocess(np.asarray(rows), training=training))
            np.testing.assert_allclose(device_images, np.asarray(images), atol=1e-5)


def _first_batches(dataset, count):
    if isinstance(dataset, keras.utils.PyDataset):
        yield from (dataset[index] for index in range(count))
    else:
        yield from dataset.take(count)


def test_index_pipeline_reshuffles_every_epoch_like_the_host_pipeline():
    split = data.load_dataset("digits").train
    dataset = data.make_index_pipeline(split, 64, training=True, seed=1, pipeline="pydataset")
    first = np.concatenate([dataset[index][0] for index in range(len(dataset))])
    dataset.on_epoch_end()
    second = np.concatenate([dataset[index][0] for index in range(len(dataset))])
    assert sorted(first) == sorted(second) == list(range(len(split)))
    assert (first != second).any()


def _statistics(images, spec):
    """Per image: mean and standard deviation (brightness, contrast),
    fraction of black (fill) pixels, and the horizontal centroid of the
    intensity (flips, shifts), on the [0, 1] scale."""
    images = data.denormalize(images, spec).mean(axis=-1)
    columns = np.arange(images.shape[2])[None, :]
    column_mass = images.sum(axis=1)
    return np.stack([
        images.mean(axis=(1, 2)),
        images.std(axis=(1, 2)),
        (images < 1e-3).mean(axis=(1, 2)),
        (column_mass * columns).sum(axis=1) / column_mass.sum(axis=1),
    ], axis=1)  # fmt: skip


def _host_augmented(splits, seed, epochs):
    dataset = data.make_pipeline(splits.train, splits.spec, batch_size=32, training=True, seed=seed)
    return np.concatenate([np.asarray(images) for _ in range(epochs) for images, _ in dataset])


def _device_augmented(model, count, epochs):
    return np.concatenate([
        keras.ops.convert_to_numpy(model.preprocess(np.arange(start, min(start + 32, count)), training=True))
        for _ in range(epochs) for start in range(0, count, 32)
    ])  # fmt: skip


@pytest.mark.parametrize("recipe", sorted(RECIPE_SHAPES))
def test_augmented_batches_have_the_same_statistics_on_both_paths(recipe):
    spec = _spec_with_recipe(recipe)
    splits = _splits(spec)
    epochs = 4
    host = _statistics(_host_augmented(splits, seed=11, epochs=epochs), spec)
    model = data.DeviceDataModel.for_splits(_tiny_classifier(spec), splits, seed=12)
    device = _statistics(_device_augmented(model, len(splits.train), epochs), spec)
    plain = _statistics(
        keras.ops.convert_to_numpy(model.preprocess(np.arange(len(splits.train)), training=False)), spec
    )
    standard_error = np.sqrt(host.var(axis=0) / len(host) + device.var(axis=0) / len(device))
    difference = np.abs(host.mean(axis=0) - device.mean(axis=0))
    assert np.all(difference <= 4 * standard_error + 1e-3), (recipe, difference, standard_error)
    # The spreads agree too (augmentation adds variance the plain images lack).
    np.testing.assert_allclose(host.std(axis=0), device.std(axis=0), rtol=0.25, atol=2e-3)
    # The statistics see the augmentation: both paths move away from the plain images.
    plain_spread = plain.std(axis=0)
    assert np.any(device.std(axis=0) > plain_spread * 1.05 + 1e-3), (recipe, device.std(axis=0), plain_spread)


def test_augmenting_wrapper_trains_inside_a_compiled_step():
    spec = _spec_with_recipe(registry.ROTATE_TRANSLATE)
    splits = _splits(spec, count=32)
    model = data.DeviceDataModel.for_splits(_tiny_classifier(spec), splits, seed=1)
    model.compile(jit_compile="auto")
    # Keras compiles the step where the backend compiles the image layers
    # (JAX, via the wrapper's override); TensorFlow's XLA has no kernel for them.
    assert model.jit_compile == (keras.backend.backend() == "jax")
    before = [np.array(weight) for weight in model.classifier.get_weights()]
    train = data.make_index_pipeline(splits.train, 16, training=True, pipeline="pydataset")
    history = model.fit(train, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = model.classifier.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_wrapper_round_trips_and_keeps_the_images_out_of_its_weights(tmp_path):
    spec = data.get_dataset_spec("digits")
    splits = data.load_dataset("digits")
    classifier = _tiny_classifier(spec)
    model = data.DeviceDataModel.for_splits(classifier, splits, seed=4)
    assert trained_classifier(model) is classifier and trained_classifier(classifier) is classifier
    clone = data.DeviceDataModel.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    path = str(tmp_path / "wrapper.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, data.DeviceDataModel)
    # The classifier's weights travel; the bank comes back as zeros.
    for saved, restored in zip(classifier.get_weights(), loaded.classifier.get_weights()):
        np.testing.assert_array_equal(saved, restored)
    assert not keras.ops.convert_to_numpy(loaded.images).any()
    weights = tmp_path / "wrapper.weights.h5"
    model.save_weights(str(weights))
    stored = []
    with h5py.File(weights, "r") as file:
        file.visititems(lambda name, item: stored.append(item.size) if isinstance(item, h5py.Dataset) else None)
    assert sum(stored) == sum(weight.size for weight in classifier.get_weights())
    loaded.set_images(np.concatenate([split.images for split in splits]))
    rows = np.array([0, 5, len(splits.train) + 3])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(rows)), keras.ops.convert_to_numpy(model(rows)), atol=1e-5
    )


def test_bad_arguments_say_what_is_allowed():
    spec = data.get_dataset_spec("digits")
    classifier = _tiny_classifier(spec)
    with pytest.raises(ValueError, match=r"stored images have 3 channels; the input needs 1"):
        data.DeviceDataModel(classifier, 4, (8, 8, 3), (32, 32, 1), spec.mean, spec.std)
    model = data.DeviceDataModel(classifier, 4, (8, 8, 1), (32, 32, 1), spec.mean, spec.std)
    with pytest.raises(ValueError, match=r"set_images needs uint8 images of shape \(4, 8, 8, 1\); got float64"):
        model.set_images(np.zeros((4, 8, 8, 1)))
    split = data.load_dataset("digits").train
    with pytest.raises(ValueError, match=r"rows must give one bank row per example"):
        data.make_index_pipeline(split, 8, rows=np.arange(3))
    streamed = DatasetSplit("train", 10, stream=lambda: None, num_examples=10)
    with pytest.raises(data.DatasetError, match="streamed"):
        data.make_index_pipeline(streamed, 8)
