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
    """Step times of one model on one input, in seconds."""

    name: str
    batch_size: int
    step_times: list

    @property
    def median_step_time(self):
        return statistics.median(self.step_times)

    @property
    def images_per_second(self):
        return self.batch_size / self.median_step_time

    @property
    def spread(self):
        """(max - min) / median of the per-round step times: the noise."""
        return (max(self.step_times) - min(self.step_times)) / self.median_step_time


def synthetic_batch(batch_size, input_shape, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch_size, *input_shape), dtype=np.float32)
    labels = rng.integers(0, num_classes, size=batch_size).astype("int32")
    return images, labels


def measure_interleaved(step_functions, batch_size, warmup_steps=3, rounds=7,
                        steps_per_round=3, progress=None):
    """Times several step functions round-robin.

    Each round times `steps_per_round` calls of every function in turn, so a
    slow spell of a shared machine hits all of them alike and their ratios
    stay meaningful. The first `warmup_steps` calls of each function
    (compilation, allocation) are not timed. Each function must block until
    its step is done (Keras' `train_on_batch` returns host values, so it
    does).

    Args:
        step_functions: `{name: zero-argument callable}`.
        progress: optional callable taking a one-line status string.

    Returns:
        `{name: Measurement}` with one step time (mean over the round's steps)
        per round.
    """
    for name, step in step_functions.items():
        if progress:
            progress(f"warming up {name}")
        for _ in range(warmup_steps):
            step()
    step_times = {name: [] for name in step_functions}
    for round_index in range(rounds):
        if progress:
            progress(f"round {round_index + 1}/{rounds}")
        for name, step in step_functions.items():
            start = time.perf_counter()
            for _ in range(steps_per_round):
                step()
            step_times[name].append((time.perf_counter() - start) / steps_per_round)
    return {
        name: Measurement(name, batch_size, times)
        for name, times in step_times.items()
    }


def training_step_function(model, images, labels):
    """One optimizer step (forward, backward, update) on a fixed batch."""

    def step():
        return model.train_on_batch(images, labels)

    return step


def inference_step_function(model, images):
    """One forward pass in inference mode on a fixed batch."""

    def step():
        return model.predict_on_batch(images)

    return step


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
