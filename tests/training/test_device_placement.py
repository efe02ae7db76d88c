"""`gradattn-train` on the device data path: where it is chosen, and that it
trains as the host pipeline does (digits has no augmentation: the same
batches give the same run, up to float noise), with the same instruments."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from keras_gradattn import data
from keras_gradattn.analysis.event_reader import read_events
from keras_gradattn.callbacks import TrainingJournal
from keras_gradattn.data.splits import DatasetSplit
from keras_gradattn.training import TrainingSetupError
from keras_gradattn.training import run_training
from keras_gradattn.training import trainer
from keras_gradattn.training.config import TrainConfig
from testing_utils import SMALL_BACKBONE
from testing_utils import SMALL_ENCODER

DIGITS = TrainConfig(
    dataset="digits", model="gradattn_learned_pe", epochs=2, max_train_samples=256, batch_size=32,
    model_args={**SMALL_BACKBONE, "stage_blocks": (1, 1, 1, 1), **SMALL_ENCODER, "num_layers": 1,
                "dropout": 0.0},
    log_gradients=2, probe_batches=2, verbose=0,
)  # fmt: skip


def test_auto_keeps_the_host_pipeline_on_a_cpu_and_the_device_on_an_accelerator(monkeypatch):
    splits = data.load_dataset("digits")
    config = TrainConfig(dataset="digits")
    monkeypatch.setattr("keras_gradattn.backend.only_cpus", lambda devices: True)
    assert trainer.resolve_data_placement(config, splits) == "host"
    assert trainer.resolve_data_placement(dataclasses.replace(config, data_placement="device"), splits) == "device"
    monkeypatch.setattr("keras_gradattn.backend.only_cpus", lambda devices: False)
    assert trainer.resolve_data_placement(config, splits) == "device"
    assert trainer.resolve_data_placement(dataclasses.replace(config, data_placement="host"), splits) == "host"
    # Too large for the device: the host pipeline.
    monkeypatch.setattr(trainer, "DEVICE_DATA_LIMIT_BYTES", data.device_resident.device_bytes(splits) - 1)
    assert trainer.resolve_data_placement(config, splits) == "host"


def test_auto_keeps_augmented_data_on_the_host_where_the_step_would_lose_compilation(monkeypatch):
    monkeypatch.setattr("keras_gradattn.backend.only_cpus", lambda devices: False)
    splits = data.load_dataset("digits")
    augmented = dataclasses.replace(splits, spec=dataclasses.replace(splits.spec, augmentation="rotate_translate"))
    config = TrainConfig(dataset="digits")
    # TensorFlow's XLA has no kernel for the image layers: the host pipeline keeps the step compiled.
    expected = "host" if keras.backend.backend() == "tensorflow" else "device"
    assert trainer.resolve_data_placement(config, augmented) == expected

    class Mirrored:
        mirrors_random_state = True

    # Replicas sharing one random state would repeat each other's augmentation.
    assert trainer.resolve_data_placement(config, augmented, Mirrored()) == "host"
    assert trainer.resolve_data_placement(config, splits, Mirrored()) == "device"  # nothing to augment
    with pytest.raises(TrainingSetupError, match="would repeat digits's augmentation draws on every replica"):
        trainer.resolve_data_placement(dataclasses.replace(config, data_placement="device"), augmented, Mirrored())


def test_a_resumed_run_keeps_its_placement_and_older_runs_resume_on_the_host(tmp_path):
    from keras_gradattn.training.config import same_setting
    from keras_gradattn.training.run_directory import RunFiles

    files = RunFiles(str(tmp_path))
    config = TrainConfig(dataset="digits")
    (tmp_path / "config.json").write_text(json.dumps({"train_config": {}, "data_placement": "device"}))
    assert trainer.with_recorded_placement(config, files, "resume").data_placement == "device"
    assert trainer.with_recorded_placement(config, files, "new").data_placement == "auto"
    explicit = dataclasses.replace(config, data_placement="host")
    assert trainer.with_recorded_placement(explicit, files, "resume").data_placement == "host"
    (tmp_path / "config.json").write_text(json.dumps({"train_config": {}}))
    assert trainer.with_recorded_placement(config, files, "resume").data_placement == "host"
    # A run recorded before the flag existed resumes with auto or host, not device.
    assert same_setting("data_placement", None, "auto") and same_setting("data_placement", None, "host")
    assert not same_setting("data_placement", None, "device")
    assert not same_setting("data_placement", "host", "device")


def test_streamed_splits_cannot_be_held_on_the_device():
    splits = data.load_dataset("digits")
    streamed = DatasetSplit("test", 10, stream=lambda: None, num_examples=len(splits.test))
    splits = dataclasses.replace(splits, test=streamed)
    config = TrainConfig(dataset="digits", data_placement="device")
    with pytest.raises(TrainingSetupError, match="--data-placement device needs in-memory splits.*use --data-placement host"):
        trainer.resolve_data_placement(config, splits)
    assert trainer.resolve_data_placement(dataclasses.replace(config, data_placement="auto"), splits) == "host"


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("placements")
    runs = {}
    for placement in ("host", "device"):
        config = dataclasses.replace(DIGITS, data_placement=placement, output_dir=str(root / placement))
        runs[placement] = run_training(config)
    return runs


def test_both_paths_train_the_same_model_to_the_same_accuracy(both_paths):
    host, device = both_paths["host"], both_paths["device"]
    assert (host.metrics["data_placement"], device.metrics["data_placement"]) == ("host", "device")
    host_history = TrainingJournal.read_history(f"{host.run_dir}/history.csv")
    device_history = TrainingJournal.read_history(f"{device.run_dir}/history.csv")
    for host_row, device_row in zip(host_history, device_history, strict=True):
        assert device_row["loss"] == pytest.approx(host_row["loss"], rel=1e-3)
        assert device_row["val_loss"] == pytest.approx(host_row["val_loss"], rel=1e-3)
    assert abs(device.metrics["top1_accuracy"] - host.metrics["top1_accuracy"]) <= 2 / 269
    assert device.metrics["trainable_parameters"] == host.metrics["trainable_parameters"]
    with open(f"{device.run_dir}/config.json") as file:
        record = json.load(file)
    assert record["data_placement"] == "device"
    assert record["model"]["config"]["name"] == "gradattn_learned_pe"
    # best.keras is the classifier, as on the host path.
    for run in (host, device):
        model = keras.saving.load_model(f"{run.run_dir}/best.keras")
        assert type(model).__name__ == "GradAttnClassifier"


def test_gradient_instruments_read_the_classifier_on_the_device_path(both_paths):
    logs = {placement: read_events(f"{run.run_dir}/logs/gradients") for placement, run in both_paths.items()}
    layouts = {}
    for placement, run in both_paths.items():
        with open(f"{run.run_dir}/logs/gradients/gradient_norm_layout.json") as file:
            layouts[placement] = json.load(file)
    assert layouts["device"] == layouts["host"]
    host_tags, device_tags = set(logs["host"].scalars), set(logs["device"].scalars)
    assert device_tags == host_tags and any(tag.startswith("depth_attention") for tag in device_tags)
    steps, host_norms = logs["host"].scalars["grad_norm_global"]
    device_steps, device_norms = logs["device"].scalars["grad_norm_global"]
    np.testing.assert_array_equal(steps, device_steps)
    np.testing.assert_allclose(device_norms, host_norms, rtol=1e-2)
    probes = {}
    for placement, run in both_paths.items():
        with open(f"{run.run_dir}/gradient_probe.json") as file:
            probes[placement] = json.load(file)
    assert probes["device"]["statistics"]["num_layers"] == probes["host"]["statistics"]["num_layers"] > 10
