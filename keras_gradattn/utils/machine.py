"""What a run or a measurement ran on, from the standard library alone.

No Keras import: experiment records are written before any backend is
chosen, and the benchmarks add the backend's own facts on top
(`keras_gradattn.benchmarks.describe_environment`).
"""

import os
import platform
import shutil
import subprocess

UNKNOWN_PROCESSOR = "unknown CPU"


def processor_name():
    """The CPU model: /proc/cpuinfo's "model name" on Linux, else what
    `platform` reports, else `UNKNOWN_PROCESSOR`."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or UNKNOWN_PROCESSOR


def gpu_names():
    """NVIDIA GPUs on this machine, from nvidia-smi (whatever the backend
    sees); an empty list without nvidia-smi or when it fails."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listing.splitlines() if line.strip()]


def describe_machine():
    """`{"processor", "cpu_count", "platform"}`: the CPU model, its core
    count and the operating system, as results files record them."""
    return {
        "processor": processor_name(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
