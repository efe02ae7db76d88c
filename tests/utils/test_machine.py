"""`describe_machine`: what experiment.json records, with the standard library only."""

import subprocess
import sys

import pytest

from keras_gradattn.utils import describe_machine
from testing_utils import REPOSITORY

pytestmark = pytest.mark.backend_independent


def test_keys_are_those_of_the_committed_experiment_files():
    machine = describe_machine()
    assert list(machine) == ["processor", "cpu_count", "platform"]
    assert machine["processor"] and machine["cpu_count"] >= 1


def test_imports_no_keras():
    # Loaded as a file: importing it through the package would run
    # keras_gradattn/__init__.py, which imports Keras.
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('machine', 'keras_gradattn/utils/machine.py')\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "module.describe_machine()\n"
        "assert 'keras' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, check=True)
