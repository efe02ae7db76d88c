"""Throughput measurement for models: warm-up excluded, interleaved rounds,
medians. Used by the benchmark commands; no backend-specific code."""

import dataclasses
import os
import platform
import shutil
import statistics
import subprocess
import time

import keras
import numpy as np


@dataclasses.dataclass
class Measurement:
    """Wall-clock times of repeated calls that each process the same number
    of images."""

    name: str
    images_per_call: int
    call_times: list

    @property
    def median_call_time(self):
        return statistics.median(self.call_times)

    @property
    def images_per_second(self):
        return self.images_per_call / self.median_call_time

    @property
    def spread(self):
        """(max - min) / median of the per-round times: the noise."""
        return (max(self.call_times) - min(self.call_times)) / self.median_call_time


def synthetic_batch(batch_size, input_shape, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch_size, *input_shape), dtype=np.float32)
    labels = rng.integers(0, num_classes, size=batch_size).astype("int32")
    return images, labels


def measure_interleaved(functions, images_per_call, warmup_calls=1, rounds=7,
                        progress=None):
    """Times several functions round-robin.

    Each round calls every function once, in turn, so a slow spell of a
    shared machine hits all of them alike and their ratios stay meaningful.
    The first `warmup_calls` calls of each function (compilation,
    allocation) are not timed. Each function must return only when its work
    is done on the device.

    Args:
        functions: `{name: zero-argument callable}`.
        images_per_call: images each call processes.
        progress: optional callable taking a one-line status string.

    Returns:
        `{name: Measurement}` with one time per round.
    """
    for name, function in functions.items():
        if progress:
            progress(f"warming up {name}")
        for _ in range(warmup_calls):
            function()
    call_times = {name: [] for name in functions}
    for round_index in range(rounds):
        if progress:
            progress(f"round {round_index + 1}/{rounds}")
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            call_times[name].append(time.perf_counter() - start)
    return {
        name: Measurement(name, images_per_call, times)
        for name, times in call_times.items()
    }


def training_function(model, images, labels, steps):
    """`steps` optimizer steps through `model.fit`, the path users train on.

    Per-call APIs such as `train_on_batch` also pay Keras' per-call costs
    (on JAX, copying every variable's state back after each call), which
    grow with the number of variables rather than with the work of a step.
    `fit` pays those once per epoch; one epoch of `steps` batches amortises
    them as training does.
    """
    batch_size = len(images)
    repeated_images = np.concatenate([images] * steps)
    repeated_labels = np.concatenate([labels] * steps)

    def train():
        # `fit` returns after the epoch's logs are read back: work is done.
        return model.fit(repeated_images, repeated_labels, batch_size=batch_size,
                         epochs=1, shuffle=False, verbose=0)

    return train


def inference_function(model, images, steps):
    """`steps` forward passes in inference mode through `model.predict`."""
    batch_size = len(images)
    repeated_images = np.concatenate([images] * steps)

    def infer():
        return model.predict(repeated_images, batch_size=batch_size, verbose=0)

    return infer


def describe_machine():
    """Backend, device and library versions, for the record of a benchmark."""
    try:
        devices = keras.distribution.list_devices()
    except AttributeError:  # Keras' torch backend has no distribution support.
        devices = None
    description = {
        "backend": keras.backend.backend(),
        "devices": devices,
        "gpus": _gpu_names(),
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "numpy": np.__version__,
    }
    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    description[module] = __import__(module).__version__
    return description


def _gpu_names():
    """NVIDIA GPUs on this machine, from nvidia-smi (independent of backend)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listing.splitlines() if line.strip()]


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
