"""Reading the values Keras passes to callbacks in `logs` (tensors or floats)."""

import math

import keras


def finite_or_none(value):
    """`value` as a float, or None when it is None, NaN or infinite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def as_float(value):
    """A Python float from a backend scalar tensor or a number."""
    return float(keras.ops.convert_to_numpy(value)) if not isinstance(value, (int, float)) else float(value)
