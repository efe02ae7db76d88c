"""Train/validation/test splits: the containers and the seeded index maths.

Everything here is NumPy; no TensorFlow.
"""

import dataclasses

import numpy as np

from keras_gradattn.data.errors import DatasetError

PAPER_FRACTIONS = (0.70, 0.15, 0.15)
# Fraction of the official training split held out as validation for
# `split="official"` when the source ships no validation split.
OFFICIAL_VALIDATION_FRACTION = 0.1


@dataclasses.dataclass
class DatasetSplit:
    """One split: uint8 images in memory, or a streamed TFDS split.

    Attributes:
        name: `"train"`, `"validation"` or `"test"`.
        num_classes: number of classes of the dataset.
        images: `(N, H, W, C)` uint8 array, or `None` for a streamed split.
        labels: `(N,)` int32 array, or `None` for a streamed split.
        stream: for streamed splits, a zero-argument callable returning a
            `tf.data.Dataset` of `(uint8 image (H, W, C), integer label)`.
        num_examples: number of examples; `len(split)` returns it.
    """

    name: str
    num_classes: int
    images: np.ndarray = None
    labels: np.ndarray = None
    stream: object = None
    num_examples: int = None

    def __post_init__(self):
        if self.images is None and self.stream is None:
            raise ValueError(f"Split {self.name!r} needs `images` or a `stream`.")
        if self.images is not None:
            if self.images.dtype != np.uint8 or self.images.ndim != 4:
                raise DatasetError(
                    f"Split {self.name!r}: images must be a uint8 (N, H, W, C) "
                    f"array, got {self.images.dtype} {self.images.shape}."
                )
            self.labels = np.asarray(self.labels).reshape(-1).astype(np.int32)
            if len(self.labels) != len(self.images):
                raise DatasetError(
                    f"Split {self.name!r}: {len(self.images)} images but "
                    f"{len(self.labels)} labels."
                )
            self.num_examples = len(self.images)
        if self.num_examples is None:
            raise ValueError(f"Streamed split {self.name!r} needs `num_examples`.")

    def __len__(self):
        return self.num_examples

    @property
    def in_memory(self):
        return self.images is not None

    def class_counts(self):
        """Examples per class (in-memory splits only)."""
        if not self.in_memory:
            raise ValueError(f"Split {self.name!r} is streamed; class counts unknown.")
        return np.bincount(self.labels, minlength=self.num_classes)

    def take(self, indices, name=None):
        """A new in-memory split holding the examples at `indices`."""
        indices = np.asarray(indices)
        return DatasetSplit(
            name=name or self.name,
            num_classes=self.num_classes,
            images=self.images[indices],
            labels=self.labels[indices],
        )

    def __repr__(self):
        where = "in memory" if self.in_memory else "streamed"
        return (
            f"DatasetSplit({self.name!r}, {self.num_examples} examples, "
            f"{self.num_classes} classes, {where})"
        )


@dataclasses.dataclass
class DatasetSplits:
    """The three splits of a dataset and the spec they were loaded for."""

    train: DatasetSplit
    validation: DatasetSplit
    test: DatasetSplit
    spec: object
    split_policy: str = "paper"

    def __iter__(self):
        return iter((self.train, self.validation, self.test))

    def sizes(self):
        return {split.name: len(split) for split in self}


def fraction_lengths(total, fractions=PAPER_FRACTIONS):
    """Split sizes for `total` examples, as `torch.utils.data.random_split`.

    Each part gets `floor(total * fraction)`; the remainder is dealt one by
    one to the parts in order. 70,000 -> 49,000 / 10,500 / 10,500.
    """
    if total < len(fractions):
        raise DatasetError(
            f"Cannot split {total} examples into {len(fractions)} parts."
        )
    lengths = [int(np.floor(total * fraction)) for fraction in fractions]
    for index in range(total - sum(lengths)):
        lengths[index % len(lengths)] += 1
    return lengths


def random_split_indices(total, seed, fractions=PAPER_FRACTIONS):
    """Disjoint index arrays covering `range(total)`, shuffled with `seed`.

    The same `(total, seed)` always gives the same split, on any machine: the
    permutation comes from NumPy's PCG64 generator, not from a global state.
    (It cannot reproduce PyTorch's own permutation; only the sizes match.)
    """
    permutation = np.random.default_rng(seed).permutation(total)
    boundaries = np.cumsum(fraction_lengths(total, fractions))[:-1]
    return [np.sort(part) for part in np.split(permutation, boundaries)]


def stratified_holdout_indices(labels, fraction, seed):
    """`(kept, held_out)` index arrays; `fraction` of each class is held out.

    Per class, `round(count * fraction)` examples are held out (at least one
    when the class has two or more examples), chosen with `seed`.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held_out = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(round(len(members) * fraction))
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        else:
            count = 0
        held_out.append(rng.choice(members, size=count, replace=False))
    held_out = np.sort(np.concatenate(held_out)) if held_out else np.array([], int)
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return kept, held_out


def subsample_indices(total, max_samples, seed):
    """At most `max_samples` sorted indices of `range(total)`, chosen with `seed`."""
    if max_samples >= total:
        return np.arange(total)
    chosen = np.random.default_rng([seed, 1]).choice(total, max_samples, replace=False)
    return np.sort(chosen)


def check_labels(labels, num_classes, where):
    """Raises `DatasetError` unless every label is an integer in range."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{where}: labels must be integers, got dtype {labels.dtype}.")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise DatasetError(
            f"{where}: labels out of range [{low}, {high}]; expected 0 .. "
            f"{num_classes - 1} for {num_classes} classes."
        )


def check_image_shape(images, spec, where):
    """Raises `DatasetError` unless `images` is (N, H, W, C) as `spec.stored_shape`."""
    shape = tuple(images.shape[1:])
    expected = tuple(spec.stored_shape)
    matches = len(shape) == len(expected) and all(
        want is None or want == got for want, got in zip(expected, shape)
    )
    if images.ndim != 4 or not matches:
        raise DatasetError(
            f"{where}: images have shape {tuple(images.shape)}; expected "
            f"(N, {', '.join(str(d) for d in expected)}) for {spec.name}."
        )
