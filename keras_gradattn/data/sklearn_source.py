"""scikit-learn's 8x8 handwritten digits (1,797 images, shipped with sklearn)."""

import numpy as np

from keras_gradattn.data.errors import DatasetError


def load(spec):
    """`{"all": (images (1797, 8, 8, 1) uint8, labels)}`; 0..16 scaled to 0..255."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError(
            "The 'digits' dataset needs scikit-learn: pip install scikit-learn."
        ) from None
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return {"all": (images[..., np.newaxis], digits.target.astype(np.int32))}
