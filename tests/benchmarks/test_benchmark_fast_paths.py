"""scripts/benchmark_fast_paths.py on tiny sizes: the report it writes agrees with the times it measured
(not its figures), and bad flags are refused."""

import json
import os

import pytest

from keras_gradattn import backend
from testing_utils import load_script

benchmark_fast_paths = load_script("benchmark_fast_paths")


def test_the_report_agrees_with_what_it_measured(tmp_path, monkeypatch):
    # Set before the run, as a user may have it: restored after every call.
    monkeypatch.setenv(backend.PORTABLE_LAYERS_VARIABLE, "1")
    output = tmp_path / "fast_paths"
    flags = ["--models", "resnet18", "--rounds", "2", "--steps", "1", "--batch-size", "2", "--target", "0.5"]
    assert benchmark_fast_paths.main(flags + ["--output", str(output)]) == 0
    with open(f"{output}.json") as file:
        (row,) = json.load(file)["rows"]
    assert row["model"] == "resnet18"
    assert row["ratio_min"] <= row["ratio_median"] <= row["ratio_max"]
    assert row["verdict"] == ("PASS" if row["ratio_median"] >= 0.5 else "MISS")
    with open(f"{output}.md") as file:
        assert f"{row['ratio_median']:.2f}x" in file.read()
    assert os.environ[backend.PORTABLE_LAYERS_VARIABLE] == "1"


@pytest.mark.parametrize("flags", [["--rounds", "0"], ["--models", "resnet1000"]])
def test_bad_flags_exit_with_status_2(flags, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_fast_paths.main(flags + ["--output", str(tmp_path / "x")])
    assert exit_info.value.code == 2
