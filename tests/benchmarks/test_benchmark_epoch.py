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
    # The run's own default gradient-log frequency was used: "auto" resolved from 2 steps an epoch.
    assert row["log_gradients"] == 10
    table = benchmark_epoch.format_table([report], args)
    (line,) = [line for line in table.splitlines() if "| gradattn_nope |" in line]
    assert ("PASS" if row["ratio"] >= benchmark_epoch.TARGET_RATIO else "MISS") in line
    assert f"{row['ratio']:.2f}x" in line


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
