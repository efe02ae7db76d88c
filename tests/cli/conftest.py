"""Shared pieces of the command-line tests: a tiny model, isolated data
discovery, a way to run `scripts/train.py`, and TensorFlow's stderr noise."""

import os
import re
import subprocess
import sys

import pytest

from testing_utils import SMALL_BACKBONE
from testing_utils import SMALL_ENCODER

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# One block per stage and one encoder layer: the same code paths as the
# paper's model, in milliseconds per step.
TINY_MODEL_ARGS = []
for key, value in {**SMALL_BACKBONE, "stage_blocks": (1, 1, 1, 1), **SMALL_ENCODER, "num_layers": 1}.items():
    TINY_MODEL_ARGS += ["--model-arg", f"{key}={value!r}"]

# TensorFlow and absl log to stderr on import whatever TF_CPP_MIN_LOG_LEVEL
# says; these lines are not the program's.
_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |WARNING:absl:)")


def program_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip() and not _NOISE.match(line)]


def isolated_environment(tmp_path):
    environment = dict(os.environ)
    environment.pop("KERAS_GRADATTN_DATA", None)
    environment.update(
        PYTHONPATH=REPO,
        TFDS_DATA_DIR=str(tmp_path / "no_tfds_here"),
        HOME=str(tmp_path / "home"),
        PYTHONUNBUFFERED="1",
    )
    return environment


def train_command(*arguments):
    return [sys.executable, os.path.join(REPO, "scripts", "train.py"), *map(str, arguments)]


def run_train(arguments, tmp_path, timeout=300):
    return subprocess.run(
        train_command(*arguments), env=isolated_environment(tmp_path), capture_output=True,
        text=True, timeout=timeout, cwd=str(tmp_path),
    )  # fmt: skip


@pytest.fixture(autouse=True)
def isolated_data_discovery(monkeypatch, tmp_path):
    """No test may find data through the environment of the machine it runs on."""
    monkeypatch.delenv("KERAS_GRADATTN_DATA", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds_here"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
