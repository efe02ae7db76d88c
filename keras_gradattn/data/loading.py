"""`load_dataset`: find a dataset's files, read them, arrange the splits."""

import dataclasses
import os

import numpy as np

from keras_gradattn.data import discovery
from keras_gradattn.data import registry
from keras_gradattn.data import splits as split_lib
from keras_gradattn.data.errors import DatasetError
from keras_gradattn.data.splits import DatasetSplit
from keras_gradattn.data.splits import DatasetSplits

SPLIT_CHOICES = ("paper", "official")
SYNTHETIC_OPTIONS = ("num_examples", "image_size", "num_classes", "channels")


def _finder_and_loader(source_format):
    # Imported lazily so that loading IDX, npz or sklearn data never imports
    # TensorFlow.
    if source_format == registry.TFDS:
        from keras_gradattn.data import tfds_source

        return tfds_source.find, tfds_source.load, tfds_source.load_streamed
    if source_format == registry.IDX:
        from keras_gradattn.data import idx_source

        return idx_source.find, idx_source.load, None
    if source_format == registry.MEDMNIST_NPZ:
        from keras_gradattn.data import medmnist_source

        return medmnist_source.find, medmnist_source.load, None
    if source_format == registry.TINY_IMAGENET_FOLDER:
        from keras_gradattn.data import folder_sources

        return folder_sources.find_tiny_imagenet, folder_sources.load_tiny_imagenet, None
    if source_format == registry.PAD_UFES_FOLDER:
        from keras_gradattn.data import folder_sources

        return folder_sources.find_pad_ufes, folder_sources.load_pad_ufes, None
    raise ValueError(f"No loader for source format {source_format!r}.")


def _not_found_message(spec, data_dir):
    if data_dir is not None:
        where = f"in data_dir={os.fspath(data_dir)!r}"
    else:
        where = (
            f"(data_dir=None; set data_dir or ${discovery.DATA_ENV_VAR}; searched "
            f"{', '.join(_searched_folders(spec))})"
        )
    return (
        f"{spec.name}: no data found {where}; expected {spec.expected_files}"
        + (" (or the four MNIST-format IDX .gz files)" if registry.IDX in spec.source_formats else "")
        + f". Get it: {spec.where_to_get}."
    )


def _searched_folders(spec):
    folders = []
    for source_format in spec.source_formats:
        if source_format == registry.TFDS:
            folders += discovery.tfds_candidates(None)
        elif source_format == registry.MEDMNIST_NPZ:
            folders += discovery.folder_candidates(spec, None, extra_defaults=["~/.medmnist"])
        else:
            folders += discovery.folder_candidates(
                spec, None, system_defaults=source_format == registry.IDX
            )
    return list(dict.fromkeys(folders))


def _read_official_splits(spec, data_dir, streamed, options):
    """`({split: (images, labels)} or {split: (make_dataset, n)}, source description)`."""
    if registry.SYNTHETIC in spec.source_formats:
        from keras_gradattn.data.synthetic import DEFAULT_NUM_EXAMPLES
        from keras_gradattn.data.synthetic import make_synthetic

        images, labels = make_synthetic(
            num_examples=options.get("num_examples", DEFAULT_NUM_EXAMPLES),
            image_size=spec.input_shape[:2],
            channels=spec.channels,
            num_classes=spec.num_classes,
            seed=options.get("synthetic_seed", 0),
        )
        return {"all": (images, labels)}, "synthetic"
    if registry.SKLEARN in spec.source_formats:
        from keras_gradattn.data import sklearn_source

        return sklearn_source.load(spec), "scikit-learn"

    from keras_gradattn.data.tfds_source import TFDSNotPrepared

    for source_format in spec.source_formats:
        find, load, load_streamed = _finder_and_loader(source_format)
        location = find(spec, data_dir)
        if location is None:
            continue
        try:
            if streamed and load_streamed is not None:
                return load_streamed(spec, location), f"{source_format}:{location}"
            return load(spec, location), f"{source_format}:{location}"
        except TFDSNotPrepared:
            if data_dir is None:
                raise
            # An explicit folder that holds neither format: one message below.
    raise DatasetError(_not_found_message(spec, data_dir))


def _synthetic_spec(spec, options):
    unknown = sorted(set(options) - set(SYNTHETIC_OPTIONS))
    if unknown:
        raise ValueError(f"Unknown synthetic options {unknown}; allowed: {SYNTHETIC_OPTIONS}.")
    image_size = options.get("image_size", spec.input_shape[:2])
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    channels = options.get("channels", spec.channels)
    num_classes = options.get("num_classes", spec.num_classes)
    if min(image_size) <= 0 or channels not in (1, 3) or num_classes < 2:
        raise ValueError(
            f"synthetic needs a positive image_size, channels 1 or 3 and at least "
            f"2 classes; got image_size={image_size}, channels={channels}, "
            f"num_classes={num_classes}."
        )
    shape = tuple(image_size) + (channels,)
    return dataclasses.replace(
        spec,
        input_shape=shape,
        stored_shape=shape,
        num_classes=num_classes,
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
    )


def _validate(spec, official, source):
    for split, (images, labels) in official.items():
        where = f"{spec.name} {split} split ({source})"
        split_lib.check_image_shape(images, spec, where)
        split_lib.check_labels(labels, spec.num_classes, where)


def load_dataset(
    name,
    data_dir=None,
    split="paper",
    seed=42,
    max_train_samples=None,
    **options,
):
    """Loads a registered dataset as train/validation/test splits.

    Args:
        name: a name from `list_datasets()`.
        data_dir: the folder (or, for MedMNIST, the `.npz` file) holding the
            data; `None` searches `$KERAS_GRADATTN_DATA` and the default
            folders (see docs/data.md). Nothing is ever downloaded.
        split: `"paper"`, the paper's protocol: every official split pooled
            and re-split 70/15/15 with `seed`, except MedMNIST and PCam,
            which keep their official splits. `"official"`: the official
            train and test; the official validation split where one exists,
            else a stratified 10% of the official train, chosen with `seed`.
        seed: seeds the re-split, the validation hold-out and the
            `max_train_samples` subset. The same seed gives the same splits.
        max_train_samples: keep a random subset (chosen with `seed`) of at
            most this many training examples; `None` keeps all.
            Validation and test are never reduced.
        **options: for `synthetic` only: `num_examples` (before splitting),
            `image_size`, `channels`, `num_classes`.

    Returns:
        `DatasetSplits(train, validation, test, spec)`; `spec` is the
        registry spec (adjusted to the options for `synthetic`).
    """
    spec = registry.get_dataset_spec(name)
    if split not in SPLIT_CHOICES:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLIT_CHOICES}.")
    if max_train_samples is not None and (
        isinstance(max_train_samples, bool) or not isinstance(max_train_samples, (int, np.integer))
        or max_train_samples <= 0
    ):
        raise ValueError(
            f"max_train_samples must be a positive integer or None, got {max_train_samples!r}."
        )
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if registry.SYNTHETIC in spec.source_formats:
        spec = _synthetic_spec(spec, options)
        options = dict(options, synthetic_seed=seed)
    elif options:
        raise ValueError(f"Unexpected options {sorted(options)} for dataset {name!r}.")

    policy = spec.paper_split if split == "paper" else registry.OFFICIAL
    if policy == registry.OFFICIAL and not spec.has_official_test:
        raise DatasetError(
            f"{spec.name} has no official test split (it ships as one set); "
            "use split='paper'."
        )
    streamed = spec.name == "pcam"
    official, source = _read_official_splits(spec, data_dir, streamed, options)

    if streamed:
        return _streamed_splits(spec, official, split, max_train_samples)

    _validate(spec, official, source)
    if policy == registry.POOLED_RESPLIT:
        images = np.concatenate([official[name][0] for name in spec.official_splits])
        labels = np.concatenate([official[name][1] for name in spec.official_splits])
        pooled = DatasetSplit("pooled", spec.num_classes, images=images, labels=labels)
        del images, labels
        train_idx, val_idx, test_idx = split_lib.random_split_indices(len(pooled), seed)
        train = pooled.take(train_idx, "train")
        validation = pooled.take(val_idx, "validation")
        test = pooled.take(test_idx, "test")
    else:
        def as_split(key, name):
            images, labels = official[key]
            return DatasetSplit(name, spec.num_classes, images=images, labels=labels)

        train = as_split("train", "train")
        test = as_split("test", "test")
        if "validation" in official:
            validation = as_split("validation", "validation")
        else:
            kept, held_out = split_lib.stratified_holdout_indices(
                train.labels, split_lib.OFFICIAL_VALIDATION_FRACTION, seed
            )
            validation = train.take(held_out, "validation")
            train = train.take(kept, "train")
    if max_train_samples is not None and max_train_samples < len(train):
        train = train.take(split_lib.subsample_indices(len(train), max_train_samples, seed))
    return DatasetSplits(train, validation, test, spec, split_policy=split)


def _streamed_splits(spec, official, split, max_train_samples):
    def as_split(key, name, limit=None):
        make_dataset, num_examples = official[key]
        if limit is not None and limit < num_examples:
            # Streamed data cannot be subsampled at random cheaply: the first
            # `limit` examples of the official (tfds-shuffled) order.
            source = make_dataset
            make_dataset = lambda: source().take(limit)  # noqa: E731
            num_examples = limit
        return DatasetSplit(
            name, spec.num_classes, stream=make_dataset, num_examples=num_examples
        )

    return DatasetSplits(
        as_split("train", "train", max_train_samples),
        as_split("validation", "validation"),
        as_split("test", "test"),
        spec,
        split_policy=split,
    )
