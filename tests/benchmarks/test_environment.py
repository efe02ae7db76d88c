"""What a benchmark records of its machine: the keys of the committed results."""

import json
import os

import keras

import pytest

from keras_gradattn.benchmarks import describe_environment
from keras_gradattn.benchmarks import write_fake_medmnist_npz
from testing_utils import REPOSITORY

pytestmark = pytest.mark.backend_independent


def test_keys_are_those_of_the_committed_throughput_file():
    with open(os.path.join(REPOSITORY, "results", "benchmarks", "throughput_cpu.json")) as file:
        committed = json.load(file)["reports"][0]["machine"]
    recorded = set(committed) - {"load_average_start", "load_average_end", "tensorflow"}
    machine = describe_environment()
    assert set(machine) == recorded | {keras.backend.backend()}
    assert machine["backend"] == keras.backend.backend()


def test_fake_medmnist_file_reads_as_bloodmnist(tmp_path):
    from keras_gradattn import data

    splits = data.load_dataset("bloodmnist", data_dir=write_fake_medmnist_npz(str(tmp_path), num_train=64))
    assert splits.spec.input_shape[-1] == 3 and splits.spec.num_classes == 8
