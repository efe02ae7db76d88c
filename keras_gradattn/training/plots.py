"""Figures written into a run directory (matplotlib, Agg: no display needed).

Figures are optional: without matplotlib they are skipped, with one warning
per process, and the run's results do not depend on them.
"""

import warnings

import numpy as np

from keras_gradattn.utils import atomic_path
from keras_gradattn.utils.plotting import pyplot

# Beyond this many classes, cells are too small for counts and tick labels.
MAX_ANNOTATED_CLASSES = 20
_warned_about_missing_matplotlib = False


def _pyplot_or_none():
    global _warned_about_missing_matplotlib
    try:
        return pyplot()
    except ImportError:
        if not _warned_about_missing_matplotlib:
            _warned_about_missing_matplotlib = True
            warnings.warn("matplotlib is not installed; figures are skipped", UserWarning, stacklevel=3)
        return None


def plot_confusion_matrix(matrix, path, class_names=None, title=None):
    """Saves a confusion matrix (rows: true class, columns: predicted) as PNG.

    Colours are row-normalised (per-class recall), so rare classes stay
    readable; cells show the counts while there are at most 20 classes.
    Without matplotlib it writes nothing and returns None (see above).
    """
    plt = _pyplot_or_none()
    if plt is None:
        return None
    matrix = np.asarray(matrix)
    num_classes = len(matrix)
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    size = min(4 + 0.45 * num_classes, 20)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    if num_classes <= MAX_ANNOTATED_CLASSES:
        ticks = np.arange(num_classes)
        axes.set_xticks(ticks, labels=names, rotation=45, ha="right")
        axes.set_yticks(ticks, labels=names)
        for row in range(num_classes):
            for column in range(num_classes):
                axes.text(
                    column, row, str(matrix[row, column]), ha="center", va="center", fontsize=8,
                    color="white" if normalised[row, column] > 0.5 else "black",
                )  # fmt: skip
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title or "Confusion matrix")
    figure.tight_layout()
    with atomic_path(path) as tmp_path:
        figure.savefig(tmp_path, dpi=100, format="png")
    plt.close(figure)
