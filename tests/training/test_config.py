"""`--log-gradients auto`: the rule, its resolution once the data is known,
and resuming runs that recorded a number (every run before "auto" did)."""

import json

import pytest

from keras_gradattn.training import protocol
from keras_gradattn.training.config import TrainConfig
from keras_gradattn.training.config import parse_gradient_log_freq
from keras_gradattn.training.config import same_setting
from keras_gradattn.training.config import with_gradient_log_freq
from keras_gradattn.training.errors import TrainingSetupError
from keras_gradattn.training.run_directory import check_output_dir

pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize(
    "steps_per_epoch, expected",
    [(1, 10), (10, 10), (100, 10), (101, 11), (250, 25), (999, 100), (1000, 100), (5000, 100)],
)
def test_auto_frequency_is_a_tenth_of_an_epoch_within_10_and_100(steps_per_epoch, expected):
    assert protocol.auto_gradient_log_freq(steps_per_epoch) == expected


def test_auto_draws_a_curve_on_small_and_large_datasets():
    # digits: 10 steps an epoch; the default of 100 steps logged every 10th epoch.
    assert 10 // protocol.auto_gradient_log_freq(10) == 1
    for steps_per_epoch in (100, 390, 1000):
        assert steps_per_epoch // protocol.auto_gradient_log_freq(steps_per_epoch) == 10
    assert 10_000 // protocol.auto_gradient_log_freq(10_000) == 100


@pytest.mark.parametrize(
    "text, expected", [("auto", "auto"), ("epoch", "epoch"), ("off", 0), ("0", 0), ("1", 1), ("250", 250)]
)
def test_flag_values(text, expected):
    assert parse_gradient_log_freq(text) == expected


@pytest.mark.parametrize("text", ["sometimes", "-3", "2.5", "", "Auto"])
def test_bad_flag_values_say_what_is_allowed(text):
    with pytest.raises(ValueError, match=r"is not a positive number of steps, 'auto', 'epoch' or 'off'$"):
        parse_gradient_log_freq(text)


def test_auto_is_resolved_from_the_epoch_length_or_the_recorded_number():
    config = TrainConfig().resolved()
    assert with_gradient_log_freq(config, steps_per_epoch=10).log_gradients == 10
    assert with_gradient_log_freq(config, steps_per_epoch=3000).log_gradients == 100
    # A resumed run keeps the number in its config.json (100: the default
    # before "auto"), whatever the rule would give now.
    assert with_gradient_log_freq(config, steps_per_epoch=10, recorded=100).log_gradients == 100
    for value in (7, "epoch", 0):
        explicit = TrainConfig(log_gradients=value).resolved()
        assert with_gradient_log_freq(explicit, steps_per_epoch=10, recorded=100) == explicit
    # With --distribute, the same rule on every backend (the recorder sees
    # the applied, averaged gradients: tests/training/test_distribution.py).
    distributed = with_gradient_log_freq(TrainConfig(distribute=True).resolved(), steps_per_epoch=10)
    assert distributed.log_gradients == 10


def test_same_setting():
    assert same_setting("log_gradients", 100, "auto")
    assert not same_setting("log_gradients", "epoch", "auto")
    assert not same_setting("log_gradients", 0, "auto")
    assert not same_setting("log_gradients", 100, 50)
    assert same_setting("model_args", {"stage_blocks": [1, 1]}, {"stage_blocks": (1, 1)})
    assert not same_setting("epochs", 100, "auto")


def _write_run(run_dir, **fields):
    config = TrainConfig(output_dir=str(run_dir), **fields).resolved()
    record = json.loads(json.dumps(config.to_record(), default=str))
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"train_config": record}))
    (run_dir / "status.json").write_text(json.dumps({"status": "running"}))


def test_a_run_that_recorded_a_number_resumes_under_auto(tmp_path):
    run_dir = tmp_path / "run"
    _write_run(run_dir, log_gradients=100)  # as every run before "auto" recorded it
    assert check_output_dir(TrainConfig(output_dir=str(run_dir), resume=True).resolved()) == "resume"
    with pytest.raises(TrainingSetupError, match=r"log_gradients \(100 -> 50\)"):
        check_output_dir(TrainConfig(output_dir=str(run_dir), resume=True, log_gradients=50).resolved())


def test_a_run_without_gradient_logs_is_not_resumed_with_them(tmp_path):
    run_dir = tmp_path / "run"
    _write_run(run_dir, log_gradients=0)
    with pytest.raises(TrainingSetupError, match=r"log_gradients \(0 -> 'auto'\)"):
        check_output_dir(TrainConfig(output_dir=str(run_dir), resume=True).resolved())
