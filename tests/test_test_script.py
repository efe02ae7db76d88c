"""scripts/test.sh: the whole suite under the first backend, the backend-dependent
tests under the others (what CI's time budget rests on)."""

import os
import subprocess

import pytest

from testing_utils import REPOSITORY

pytestmark = pytest.mark.backend_independent

# Stands in for the interpreter: prints the backend and the arguments it got.
FAKE_PYTHON = """#!/bin/sh
echo "$KERAS_BACKEND $*"
"""


def _pytest_calls(tmp_path, **environment):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    result = subprocess.run(
        ["bash", os.path.join(REPOSITORY, "scripts", "test.sh"), "-k", "layers"],
        env={**os.environ, "PY": str(fake), "BACKENDS": "tensorflow jax torch", **environment},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if not line.startswith(("===", "tests passed"))]


def test_backend_independent_tests_run_with_the_first_backend_only(tmp_path):
    assert _pytest_calls(tmp_path) == [
        "tensorflow -m pytest --durations=40 -k layers",
        "jax -m pytest --durations=40 -m not backend_independent -k layers",
        "torch -m pytest --durations=40 -m not backend_independent -k layers",
    ]


def test_every_test_under_every_backend_on_request(tmp_path):
    calls = _pytest_calls(tmp_path, EVERY_TEST_EVERY_BACKEND="1")
    assert calls == [f"{backend} -m pytest --durations=40 -k layers" for backend in ("tensorflow", "jax", "torch")]
