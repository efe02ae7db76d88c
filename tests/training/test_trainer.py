"""The trainer's choices before any training: defaults, precision, optimizer."""

import dataclasses
import json

import keras
import pytest

from keras_gradattn.training import protocol
from keras_gradattn.optimizers import AdamL2
from keras_gradattn.training.config import TrainConfig
from keras_gradattn.training.trainer import prepare
from testing_utils import SMALL_BACKBONE

TINY = TrainConfig(
    dataset="synthetic", model="resnet18", max_train_samples=32, batch_size=16,
    dataset_args={"num_examples": 100}, model_args={**SMALL_BACKBONE, "stage_blocks": (1, 1, 1, 1)},
)  # fmt: skip


def test_defaults_are_the_papers():
    config = TrainConfig().resolved()
    assert (config.dataset, config.model) == ("digits", "gradattn_learned_pe")
    assert config.epochs == 100 and config.batch_size == 128 and config.seed == 42
    assert config.learning_rate == 1e-3 and config.weight_decay == 1e-4
    assert not config.decoupled_weight_decay
    assert config.output_dir.endswith("digits-gradattn_learned_pe-seed42")
    assert TrainConfig(dataset="pad_ufes_20").resolved().batch_size == 64
    assert TrainConfig(dataset="pad_ufes_20", batch_size=8).resolved().batch_size == 8


def test_optimizers():
    coupled = protocol.build_optimizer(1e-3, 1e-4)
    assert isinstance(coupled, AdamL2) and coupled.l2 == 1e-4
    decoupled = protocol.build_optimizer(1e-3, 1e-4, decoupled=True)
    assert isinstance(decoupled, keras.optimizers.AdamW) and decoupled.weight_decay == 1e-4


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_precision_sets_the_dtype_policy(precision):
    prepared = prepare(dataclasses.replace(TINY, precision=precision).resolved())
    model = prepared.classifier
    # The layers compute in the chosen policy (Keras' functional model
    # objects themselves keep float32 as their own policy).
    assert model.backbone.get_layer("stem").dtype_policy.name == precision
    # Logits (and so the loss and metrics) stay float32.
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    loss_scaled = isinstance(prepared.model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert loss_scaled == (precision == "mixed_float16")


def test_same_seed_same_initial_weights_and_batches():
    first = prepare(TINY.resolved())
    second = prepare(TINY.resolved())
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        assert (a == b).all()
    third = prepare(dataclasses.replace(TINY, seed=7).resolved())
    assert any((a != b).any() for a, b in zip(first.model.get_weights(), third.model.get_weights()))


def test_gradient_instruments_default_on_and_off_with_distribute():
    from keras_gradattn.training import TrainingSetupError
    from keras_gradattn.training import validate_config

    assert TrainConfig().resolved().log_gradients == "auto"
    assert TrainConfig(log_gradients=None).resolved().log_gradients == "auto"
    assert TrainConfig().probe_batches == protocol.PROBE_BATCHES == 20
    # With --distribute, gradient logging is on by default and may be asked for.
    assert TrainConfig(distribute=True).resolved().log_gradients == "auto"
    validate_config(TrainConfig(distribute=True, log_gradients=10).resolved())
    validate_config(TrainConfig(distribute=True, log_gradients=0).resolved())
    with pytest.raises(TrainingSetupError, match="log_gradients must be a positive number"):
        validate_config(TrainConfig(log_gradients=-5).resolved())
    for bad in ("sometimes", 2.5, True):
        with pytest.raises(TrainingSetupError, match="positive number of steps, 'auto', 'epoch' or 'off'"):
            validate_config(TrainConfig(log_gradients=bad).resolved())


def test_config_json_records_the_number_auto_resolved_to(tmp_path):
    from keras_gradattn.training import run_training

    run_dir = tmp_path / "run"
    config = dataclasses.replace(TINY, epochs=1, probe_batches=0, verbose=0, output_dir=str(run_dir))
    assert config.log_gradients == "auto"
    run_training(config)
    # 32 examples in batches of 16: 2 steps an epoch.
    expected = protocol.auto_gradient_log_freq(2)
    with open(run_dir / "config.json") as file:
        assert json.load(file)["train_config"]["log_gradients"] == expected
    with open(run_dir / "logs" / "gradients" / "gradient_norm_layout.json") as file:
        assert json.load(file)["update_freq"] == expected


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="Keras runs torch one step per call")
@pytest.mark.parametrize("placement", ["host", "device"])
def test_steps_per_execution_trains_every_step_and_logs_gradients_on_schedule(placement, tmp_path):
    from keras_gradattn.analysis.event_reader import read_events
    from keras_gradattn.training import run_training

    run_dir = tmp_path / "run"
    # 64 examples in batches of 16: 4 steps an epoch, run 2 per call.
    config = dataclasses.replace(
        TINY, epochs=2, max_train_samples=64, probe_batches=0, verbose=0, output_dir=str(run_dir),
        steps_per_execution=2, log_gradients=2, data_placement=placement,
    )  # fmt: skip
    result = run_training(config)
    assert result.metrics["epochs_run"] == 2 and result.metrics["data_placement"] == placement
    with open(run_dir / "config.json") as file:
        assert json.load(file)["train_config"]["steps_per_execution"] == 2
    steps, _ = read_events(run_dir / "logs" / "gradients").scalars["grad_norm_global"]
    # Every optimizer step happened (8 in two epochs), and the logger wrote at steps 2, 4, 6, 8.
    assert steps.tolist() == [2, 4, 6, 8]


def test_steps_per_execution_is_validated():
    from keras_gradattn.training.config import validate_config

    with pytest.raises(ValueError, match=r"steps_per_execution must be a positive integer, got 0"):
        validate_config(dataclasses.replace(TINY, steps_per_execution=0).resolved())
    if keras.backend.backend() == "torch":
        with pytest.raises(ValueError, match=r"must be 1 on the torch backend .* got 2; allowed above 1: the tensorflow"):
            validate_config(dataclasses.replace(TINY, steps_per_execution=2).resolved())
    else:
        validate_config(dataclasses.replace(TINY, steps_per_execution=2).resolved())
