import matplotlib
import numpy as np

import pytest

from keras_gradattn.training.plots import plot_confusion_matrix

pytestmark = pytest.mark.backend_independent


def test_figures_keep_the_backend_the_caller_chose(tmp_path):
    # A notebook's inline backend must survive our file-only figures, or the
    # notebook's own plots stop showing.
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    plt.switch_backend("svg")
    try:
        path = tmp_path / "matrix.png"
        plot_confusion_matrix(np.eye(3, dtype=int), path)
        assert matplotlib.get_backend() == "svg"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        plt.switch_backend(previous)
