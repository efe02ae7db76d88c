"""benchmark_epoch: a gradattn-train epoch against the bare step, with tiny sizes (the figures themselves
are not tested: only that they are measured, reported and judged consistently)."""

import json
import time

import keras
import numpy as np
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
    # Each epoch's parts are recorded for the timed epochs.
    for key in ("epoch_step_seconds", "epoch_wait_seconds", "epoch_end_seconds"):
        assert len(row[key]) == 2
    # The run's own default gradient-log frequency was used: "auto" resolved from 2 steps an epoch.
    assert row["log_gradients"] == 10
    table = benchmark_epoch.format_table([report], args)
    (line,) = [line for line in table.splitlines() if "| gradattn_nope |" in line]
    assert ("PASS" if row["ratio"] >= benchmark_epoch.TARGET_RATIO else "MISS") in line
    assert f"{row['ratio']:.2f}x" in line
    assert f"{row['full_epoch_ratio']:.2f}x" in line and f"{row['loop_ratio']:.2f}x" in line


def test_epoch_timer_puts_each_second_in_its_part():
    # Known delays in each part: between steps (a callback's batch begin, before the timer's), and
    # at the epoch end (a callback's epoch end, before the timer's).
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")

    class Delays(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            time.sleep(0.5)

        def on_epoch_end(self, epoch, logs=None):
            time.sleep(0.5)

    timer = benchmark_epoch._epoch_timer()
    model.fit(np.zeros((8, 4), "float32"), np.zeros((8,), "int32"), batch_size=4, epochs=2, verbose=0,
              validation_data=(np.zeros((4, 4), "float32"), np.zeros((4,), "int32")),
              callbacks=[Delays(), timer])  # fmt: skip
    assert len(timer.train_seconds) == 2
    for wait, end, validation in zip(timer.wait_seconds, timer.epoch_end_seconds, timer.validation_seconds):
        assert wait >= 1.0  # two batches, 0.5 s each
        assert end >= 0.5
        assert validation > 0
    # The second epoch's steps (the first one's compile) hold none of the delays: two steps of a
    # 15-parameter model, well under one delay even on a loaded machine.
    assert 0 < timer.step_seconds[1] < 0.5


def test_full_epoch_projection_adds_the_epoch_end_once():
    # Bare: 2 steps of 32 a round, median round 1.0 s (0.5 s a step). The run: 2 steps an epoch,
    # median 0.6 s a step with its waits, median epoch end 4 s (medians, not means: the outliers
    # would move a mean). A 49,000-image epoch has 1,532 steps of 32.
    args = benchmark_epoch.build_parser().parse_args(["--batch-size", "32", "--train-images", "64"])
    row = {
        "bare_round_seconds": [0.9, 1.0, 3.0],
        "epoch_step_seconds": [1.0, 1.1, 5.0],
        "epoch_wait_seconds": [0.2, 0.1, 0.3],
        "epoch_end_seconds": [3.5, 4.0, 20.0],
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
