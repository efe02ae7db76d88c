import os

# XLA's CPU backend spends most of a test's time optimising tiny programs;
# tests run them a handful of times, so a cheaper compile wins. Set before any
# backend initialises.
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
)

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def seeded_float32():
    """Every test starts seeded and in float32, whatever the last one did."""
    keras.utils.set_random_seed(1337)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
