import keras
import pytest


@pytest.fixture(autouse=True)
def seeded_float32():
    """Every test starts seeded and in float32, whatever the last one did."""
    keras.utils.set_random_seed(1337)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
