"""What a benchmark ran with: the machine, the backend and its devices, the
library versions."""

import platform

import keras
import numpy as np

from keras_gradattn.utils.machine import describe_machine
from keras_gradattn.utils.machine import gpu_names

# The library that runs each Keras backend, whose version is recorded.
BACKEND_LIBRARIES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def describe_environment():
    """`describe_machine()` plus the Keras backend, the devices it sees, the
    NVIDIA GPUs, and the Python, Keras, NumPy and backend versions."""
    try:
        devices = keras.distribution.list_devices()
    except AttributeError:  # Keras' torch backend has no distribution support.
        devices = None
    backend = keras.backend.backend()
    machine = describe_machine()
    description = {
        "backend": backend,
        "devices": devices,
        "gpus": gpu_names(),
        "platform": machine["platform"],
        "processor": machine["processor"],
        "cpu_count": machine["cpu_count"],
        "python": platform.python_version(),
        "keras": keras.__version__,
        "numpy": np.__version__,
    }
    library = BACKEND_LIBRARIES[backend]
    description[library] = __import__(library).__version__
    return description
