"""benchmark_epoch: a gradattn-train epoch against the bare step, with tiny sizes (the figures themselves
are not tested: only that they are measured, reported and judged consistently)."""

import json

import keras
import pytest

from keras_gradattn.cli import benchmark_epoch


@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="the benchmark's code is backend-agnostic and run_training is tested on every backend elsewhere; "
    "one backend keeps CI's time down",
)
def test_one_backend_end_to_end_in_process(tmp_path, capsys):
    args = benchmark_epoch.build_parser().parse_args(
        ["--models", "gradattn_nope", "--batch-size", "32", "--train-images", "64", "--epochs", "3", "--rounds", "1",
         "--output", str(tmp_path / "epoch")]
    )  # fmt: skip
    assert benchmark_epoch.run_worker(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["backend"] == keras.backend.backend()
    (row,) = report["results"]
    # Epochs 2 and 3 are timed (the first compiles), bare rounds before and after the run.
    assert len(row["epoch_train_seconds"]) == 2 and len(row["bare_round_seconds"]) == 2
    assert all(seconds > 0 for seconds in row["epoch_train_seconds"] + row["bare_round_seconds"])
    # The median of two epochs is their mean.
    assert row["epoch_images_per_second"] == pytest.approx(64 / (sum(row["epoch_train_seconds"]) / 2))
    assert row["ratio"] == pytest.approx(row["epoch_images_per_second"] / row["bare_images_per_second"])
    # Each epoch splits into its steps, the waits between them and its epoch-end work, all measured.
    for parts in zip(row["epoch_step_seconds"], row["epoch_wait_seconds"], row["epoch_end_seconds"],
                     row["epoch_train_seconds"]):  # fmt: skip
        step, wait, end, train = parts
        assert step > 0 and wait >= 0 and end > 0
        assert step + wait + end == pytest.approx(train)
    # The run's own default gradient-log frequency was used: "auto" resolved from 2 steps an epoch.
    assert row["log_gradients"] == 10
    table = benchmark_epoch.format_table([report], args)
    (line,) = [line for line in table.splitlines() if "| gradattn_nope |" in line]
    assert ("PASS" if row["ratio"] >= benchmark_epoch.TARGET_RATIO else "MISS") in line
    assert f"{row['ratio']:.2f}x" in line
    assert f"{row['full_epoch_ratio']:.2f}x" in line and f"{row['loop_ratio']:.2f}x" in line


def test_full_epoch_projection_adds_the_epoch_end_once():
    # Bare: 2 steps of 32 in 1 s (0.5 s a step). The run: 2 steps an epoch, 0.6 s each with its
    # waits, and 4 s of epoch-end work. A 49,000-image epoch has 1,532 steps of 32.
    args = benchmark_epoch.build_parser().parse_args(["--batch-size", "32", "--train-images", "64"])
    row = {
        "bare_round_seconds": [0.9, 1.0, 1.1],
        "epoch_step_seconds": [1.0, 1.1, 0.9],
        "epoch_wait_seconds": [0.2, 0.1, 0.3],
        "epoch_end_seconds": [3.0, 4.0, 5.0],
    }
    projection = benchmark_epoch.project_full_epoch(row, 64, args)
    assert projection["loop_ratio"] == pytest.approx(0.5 / 0.6)
    assert projection["full_epoch_ratio"] == pytest.approx(1532 * 0.5 / (1532 * 0.6 + 4.0))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--epochs", "1"], "--epochs must be at least 2 (the first epoch compiles and is not counted); received 1"),
        (["--train-images", "10", "--batch-size", "32"], "--train-images (10) must be at least one batch"),
        (["--backends", "mxnet"], "mxnet"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(arguments, message, tmp_path, capsys):
    status = benchmark_epoch.main([*arguments, "--output", str(tmp_path / "epoch")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0]
    assert not list(tmp_path.iterdir())
