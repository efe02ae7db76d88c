"""`scripts/count_flops.py`: its counts against hand-counted encoder FLOPs, its
files and its handling of bad input."""

import json
import os
import subprocess
import sys

import pytest

from keras_gradattn.cli import count_flops
from testing_utils import REPOSITORY

pytestmark = pytest.mark.backend_independent


def _rows_by_model(output_prefix):
    with open(f"{output_prefix}.json", encoding="utf-8") as file:
        report = json.load(file)
    return report, {row["model"]: row for row in report["results"]}


def test_encoder_flops_match_a_hand_count(tmp_path):
    # Under any KERAS_BACKEND: the script counts in a JAX process of its own.
    output = tmp_path / "flops"
    command = [sys.executable, os.path.join(REPOSITORY, "scripts", "count_flops.py"),
               "--models", "resnet18,plain_resnet18,gradattn_nope",
               "--input-shapes", "28x28x1", "--output", str(output)]  # fmt: skip
    process = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPOSITORY})
    assert process.returncode == 0, process.stderr[-2000:]
    report, rows = _rows_by_model(output)
    assert report["command"].startswith("python scripts/count_flops.py --models")

    # GradAttn = the plain backbone + five tap projections + three encoder
    # layers of width 256 (8 heads, feed-forward 512) over five tokens + a
    # head of 256 instead of 512 inputs. Matrix products dominate: two FLOPs
    # per multiply-add.
    width, feedforward, tokens, layers = 256, 512, 5, 3
    tap_channels = (64, 64, 128, 256, 512)
    encoder = layers * tokens * (4 * width * width + 2 * width * feedforward)
    projections = sum(tap_channels) * width
    head_difference = (width - 512) * 10
    expected = 2 * (encoder + projections + head_difference)
    measured = (rows["gradattn_nope"]["forward_mflops"] - rows["plain_resnet18"]["forward_mflops"]) * 1e6
    # What the hand count leaves out (biases, LayerNorm, softmax, attention
    # over 5 tokens) is about 1% here.
    assert 1.0 <= measured / expected < 1.03, (measured, expected)

    # Backward costs about twice the forward pass.
    for row in rows.values():
        assert 2.5 < row["training_mflops"] / row["forward_mflops"] < 3.5, row
    assert rows["resnet18"]["training_ratio_vs_resnet18"] == 1.0
    assert rows["plain_resnet18"]["training_ratio_vs_resnet18"] < 1.0  # no projection shortcuts
    assert rows["gradattn_nope"]["training_ratio_vs_resnet18"] > 1.3
    with open(f"{output}.md", encoding="utf-8") as file:
        assert "| 28x28x1 | gradattn_nope |" in file.read()


def test_bad_input_is_one_line_and_exit_status_2(capsys):
    assert count_flops.main(["--input-shapes", "28x28"]) == 2
    assert count_flops.main(["--num-classes", "0"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("count_flops.py: error:") for line in lines)
