"""What a run's config.json records besides its settings: the data's
fingerprints, the model, the protocol, the package versions, the git commit,
the machine: enough to say exactly what ran, and to run it again."""

import dataclasses
import datetime
import hashlib
import importlib.metadata
import platform
import subprocess
import os

import keras
import numpy as np

from keras_gradattn.training import protocol
from keras_gradattn.training.installation import describe_devices
from keras_gradattn.utils import atomic_write_json
from keras_gradattn.utils.parameters import count_parameters

VERSION_PACKAGES = (
    "keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "numpy",
    "tensorflow-datasets", "scikit-learn", "matplotlib",
)  # fmt: skip


def package_versions():
    versions = {}
    for package in VERSION_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    versions["python"] = platform.python_version()
    return versions


def git_state():
    folder = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(
            ["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", folder, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def write_config(config, files, prepared, command_line, rerun_command):
    splits = prepared.splits
    record = {
        "train_config": config.to_record(),
        "command_line": command_line,
        "rerun_command": rerun_command,
        "backend": keras.backend.backend(),
        "dataset": {
            "spec": dataclasses.asdict(splits.spec),
            "split_policy": splits.split_policy,
            "sizes": splits.sizes(),
            "fingerprints": split_fingerprints(splits),
        },
        "model": {
            "name": config.model,
            "trainable_parameters": count_parameters(prepared.classifier),
            "total_parameters": count_parameters(prepared.classifier, trainable_only=False),
            "config": prepared.classifier.get_config(),
        },
        "optimizer": keras.saving.serialize_keras_object(prepared.model.optimizer),
        "protocol": protocol.describe_protocol(),
        "distribution": prepared.distribution.describe(),
        # "device": images held and augmented on the device (DeviceDataModel).
        "data_placement": prepared.data_placement,
        # The backend's devices (a run without --distribute uses the first)
        # and the NVIDIA GPUs nvidia-smi lists, seen by the backend or not.
        "devices": describe_devices(),
        "dtype_policy": config.precision,
        "versions": package_versions(),
        "git": git_state(),
        "platform": platform.platform(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(files.config, record)


def split_fingerprints(splits):
    """SHA-256 of each in-memory split's images and labels: the run's exact
    data, whichever folder it was found in (streamed splits: `None`)."""
    fingerprints = {}
    for split in splits:
        if not split.in_memory:
            fingerprints[split.name] = None
            continue
        digest = hashlib.sha256(np.ascontiguousarray(split.images).tobytes())
        digest.update(np.ascontiguousarray(split.labels, dtype=np.int64).tobytes())
        fingerprints[split.name] = digest.hexdigest()
    return fingerprints
