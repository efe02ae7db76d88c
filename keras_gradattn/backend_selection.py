"""Chooses the Keras backend before Keras is imported (standard library only).

Importing any module of keras_gradattn imports Keras, and Keras fixes its
backend for the life of the process at import. So two decisions are made
here, by the package's `__init__`, before that import:

1. Our own commands (`gradattn-train ...`, `python scripts/train.py ...`)
   accept `--backend NAME`; it must win before Keras loads. Programs of
   other names are left alone: a library does not read their flags.
2. Without `KERAS_BACKEND`, Keras takes the backend from
   `~/.keras/keras.json`, which Keras itself writes on first import with its
   default, TensorFlow. When that backend is not installed, the first
   installed of TensorFlow, JAX and PyTorch is used instead of failing at
   import, so machines with JAX or PyTorch only (common on GPU servers) work
   as is. An explicit `KERAS_BACKEND` is always left as it is.
"""

import importlib.util
import json
import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")
# Console scripts (pyproject.toml [project.scripts]) and the scripts/ files
# that wrap them.
COMMANDS = (
    "gradattn-train",
    "gradattn-reproduce",
    "gradattn-analyze",
    "gradattn-benchmark",
)
SCRIPTS = ("train.py", "reproduce.py", "analyze_gradients.py", "benchmark.py",
           "benchmark_models.py")


def backend_flag(argv):
    """The value of `--backend NAME` / `--backend=NAME` in `argv`, or None."""
    for index, argument in enumerate(argv):
        if argument == "--backend" and index + 1 < len(argv):
            return argv[index + 1]
        if argument.startswith("--backend="):
            return argument.split("=", 1)[1]
    return None


def _is_our_command(program):
    name = os.path.basename(program)
    if name in COMMANDS:
        return True
    if name not in SCRIPTS:
        return False
    # One of this checkout's scripts/, not somebody else's train.py.
    package_parent = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    program_dir = os.path.dirname(os.path.realpath(program))
    return program_dir == os.path.join(package_parent, "scripts")


def _keras_json_backend():
    keras_home = os.environ.get(
        "KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras")
    )
    try:
        with open(os.path.join(keras_home, "keras.json")) as config:
            return json.load(config).get("backend") or "tensorflow"
    except (OSError, ValueError):
        return "tensorflow"


def _installed(backend):
    return importlib.util.find_spec(backend) is not None


def select_backend(argv=None):
    """Sets `KERAS_BACKEND` per the rules above; a no-op once Keras is loaded.

    Returns the backend chosen here, or None when nothing was changed.
    """
    if "keras" in sys.modules:
        return None
    argv = sys.argv if argv is None else argv
    if argv and _is_our_command(argv[0]):
        requested = backend_flag(argv[1:])
        if requested in BACKENDS:
            # Invalid names are left for the command's own argument parser,
            # which reports them with the allowed values.
            os.environ["KERAS_BACKEND"] = requested
            return requested
    if os.environ.get("KERAS_BACKEND") or _installed(_keras_json_backend()):
        return None
    for candidate in BACKENDS:
        if _installed(candidate):
            os.environ["KERAS_BACKEND"] = candidate
            return candidate
    return None
