"""The one way every command chooses its Keras backend (standard library only).

Keras fixes its backend for the life of a process when it is imported, from
`KERAS_BACKEND` or else from `~/.keras/keras.json` (which Keras writes on its
first import, naming TensorFlow). Importing `keras_gradattn` imports no
Keras, so each command calls `choose_keras_backend` first thing, before its
argument parser (which lists the registered models, and so imports Keras) is
built:

1. a backend the command asks for (`gradattn-train --backend jax`, or JAX
   for `count_flops.py`) becomes `KERAS_BACKEND`;
2. otherwise an explicit `KERAS_BACKEND`, or keras.json's backend when it is
   installed, is kept;
3. otherwise the first installed of TensorFlow, JAX and PyTorch is used, so
   that a machine with only JAX or only PyTorch (`pip install
   keras-gradattn[jax]`) runs every command without configuration.

Once Keras is loaded (a command's `main` called from Python), the backend
can no longer change: asking for another one is an error.

`choose_keras_backend` then imports Keras itself, with TensorFlow's C++
start-up lines (the absl notice, the CPU-feature and oneDNN notices, which
TF_CPP_MIN_LOG_LEVEL does not silence on every machine) filtered out of
stderr at the file-descriptor level, so that a command's one-line error is
one line. Every other line TensorFlow writes meanwhile is passed on.
"""

import importlib.util
import json
import os
import sys

from keras_gradattn.backend import BACKENDS
from keras_gradattn.backend.startup_notices import is_startup_line  # noqa: F401 (tests use it from here)
from keras_gradattn.backend.startup_notices import startup_lines_filtered
from keras_gradattn.cli.arguments import option_value


def keras_json_backend():
    """The backend `~/.keras/keras.json` (or `$KERAS_HOME/keras.json`) names,
    TensorFlow when there is none: what Keras would load."""
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    try:
        with open(os.path.join(keras_home, "keras.json")) as config:
            return json.load(config).get("backend") or "tensorflow"
    except (OSError, ValueError):
        return "tensorflow"


def is_installed(backend):
    # `keras_gradattn.utils.dependencies.module_available` does the same, but
    # importing `keras_gradattn.utils` imports Keras, which this module must not.
    return importlib.util.find_spec(backend) is not None


def requested_backend(argv):
    """The value of `--backend NAME` / `--backend=NAME` in `argv` when it names
    a backend, else None: a bad value is left for the command's parser, which
    reports it with the allowed ones."""
    value = option_value(argv, "--backend")
    return value if value in BACKENDS else None


def choose_keras_backend(requested=None, flag="--backend"):
    """Sets the Keras backend of this process before Keras is imported.

    Args:
        requested: a name from `BACKENDS`, or None for rules 2 and 3 above.
        flag: how the request is named in the error message.

    Returns:
        None when the backend is (or will be) in force, else a one-line
        problem for the command to report: Keras was already imported with
        another backend.
    """
    if "keras" in sys.modules:
        import keras

        current = keras.backend.backend()
        if requested is not None and requested != current:
            return (
                f"{flag} {requested}: Keras was already imported with the {current} backend in "
                f"this process; set KERAS_BACKEND={requested} before importing Keras"
            )
        return None
    if requested is not None:
        os.environ["KERAS_BACKEND"] = requested
    elif not os.environ.get("KERAS_BACKEND") and not is_installed(keras_json_backend()):
        installed = [backend for backend in BACKENDS if is_installed(backend)]
        if installed:
            os.environ["KERAS_BACKEND"] = installed[0]
    # TensorFlow's info and warning logs (not its errors) would sit above
    # every message of ours; an explicit setting is kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _import_keras()
    return None


def _import_keras():
    # Fixes the backend now, with TensorFlow's start-up notices filtered.
    with startup_lines_filtered():
        import keras  # noqa: F401

        # Under JAX or PyTorch, tensorflow-datasets and the tf.data pipeline
        # import TensorFlow later, and its notices would come then: load it
        # here, inside the filter, where it is installed.
        if keras.backend.backend() != "tensorflow" and is_installed("tensorflow"):
            import tensorflow  # noqa: F401


