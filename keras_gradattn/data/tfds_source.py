"""Datasets read with tensorflow-datasets, never downloading.

`tfds.load(..., download=False)` only reads a dataset already prepared in a
tfds data folder, so a machine without internet fails at once with a
`DatasetError` that says how to prepare the folder elsewhere, instead of
hanging on a download. TensorFlow and tfds are imported only when a TFDS
dataset is loaded.
"""

import os

import numpy as np

from keras_gradattn.data import discovery
from keras_gradattn.backend.startup_notices import startup_lines_filtered
from keras_gradattn.data.errors import DatasetError


class TFDSNotPrepared(DatasetError):
    """The dataset is not prepared in the tfds folder that was tried."""


def _import_tfds():
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # TensorFlow loads with tensorflow-datasets, also under JAX or torch.
        with startup_lines_filtered():
            import tensorflow_datasets as tfds
    except ImportError:
        raise DatasetError(
            "tensorflow-datasets is not installed; pip install "
            "'keras-gradattn[data]' (TensorFlow + tensorflow-datasets)."
        ) from None
    return tfds


def find(spec, data_dir):
    """The tfds data folder to read from, or `None`.

    An explicit `data_dir` is always returned (reading it decides); otherwise
    the first candidate holding a `<tfds_name>/` folder.
    """
    if data_dir is not None:
        return os.fspath(data_dir)
    for folder in discovery.tfds_candidates(None):
        if os.path.isdir(os.path.join(folder, spec.tfds_name)):
            return folder
    return None


def _load_split(tfds, spec, split, folder, **kwargs):
    not_found = (AssertionError,)
    if hasattr(tfds.core, "DatasetNotFoundError"):
        not_found += (tfds.core.DatasetNotFoundError,)
    try:
        return tfds.load(
            spec.tfds_name,
            split=split,
            data_dir=folder,
            download=False,
            as_supervised=True,
            shuffle_files=False,
            **kwargs,
        )
    except not_found:
        raise TFDSNotPrepared(
            f"{spec.name}: no prepared tensorflow-datasets copy of "
            f"{spec.tfds_name!r} in {folder}; {spec.where_to_get}."
        ) from None


def load(spec, folder):
    """`{split: (images uint8 (N, H, W, C), labels (N,))}` for every official split."""
    tfds = _import_tfds()
    import tensorflow as tf

    splits = {}
    for split in spec.official_splits:
        # Fixed-size chunks, not batch_size=-1: that asks tfds for one batch
        # of the recorded split size, which is unknown for mocked data.
        dataset = _load_split(tfds, spec, split, folder).batch(8192)
        try:
            chunks = list(tfds.as_numpy(dataset))
        except tf.errors.OpError as error:
            raise DatasetError(
                f"{spec.name}: cannot read the {split!r} split in {folder} "
                f"({type(error).__name__}: {error.message.splitlines()[0]}); "
                "the prepared files may be corrupt: rebuild them."
            ) from None
        if not chunks:
            raise DatasetError(f"{spec.name}: the {split!r} split in {folder} is empty.")
        images = np.concatenate([chunk[0] for chunk in chunks])
        labels = np.concatenate([chunk[1] for chunk in chunks])
        splits[split] = (images.astype(np.uint8, copy=False), labels)
    return splits


def load_streamed(spec, folder):
    """`{split: (make_dataset, num_examples)}` for splits too large for memory.

    `make_dataset()` returns a `tf.data.Dataset` of `(uint8 image, label)`.
    """
    tfds = _import_tfds()
    splits = {}
    for split in spec.official_splits:
        # Fails here, not when the pipeline first reads, if nothing is prepared.
        dataset = _load_split(tfds, spec, split, folder)
        num_examples = int(dataset.cardinality())
        if num_examples < 0:
            # Unknown cardinality (e.g. mocked data): count once.
            num_examples = sum(1 for _ in dataset)

        def make_dataset(split=split):
            return _load_split(tfds, spec, split, folder)

        splits[split] = (make_dataset, num_examples)
    return splits
