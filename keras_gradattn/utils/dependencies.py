"""Which optional packages this environment has."""

import importlib.util


def module_available(name):
    """Whether `import name` would find the package, without importing it
    (importing TensorFlow to find out would cost seconds)."""
    return importlib.util.find_spec(name) is not None
