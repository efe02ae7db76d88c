"""Which optional packages this environment has, and where this package is."""

import importlib.util
import os

# The folder that holds `keras_gradattn/`: on a subprocess's PYTHONPATH it
# makes the subprocess import this copy of the package (a checkout that is
# not installed, or a frozen worktree), as the parent process does.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def module_available(name):
    """Whether `import name` would find the package, without importing it
    (importing TensorFlow to find out would cost seconds)."""
    return importlib.util.find_spec(name) is not None


def with_package_on_path(environment):
    """A copy of `environment` (a dict of variables) whose PYTHONPATH starts
    with `PACKAGE_PARENT`, for subprocesses that import this package."""
    environment = dict(environment)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, environment.get("PYTHONPATH")]))
    return environment
