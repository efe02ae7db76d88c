"""HParams summaries of a grid's runs, read back with TensorBoard's EventAccumulator."""

import os

import pytest
from reproduce_testing import fake_run
from tensorboard_testing import load_with_tensorboard

from keras_gradattn.experiments import tensorboard_hparams

pytestmark = pytest.mark.backend_independent


def _hparam_values(hparams):
    """{name: python value} of a map of protobuf Values."""
    values = {}
    for name, value in hparams.items():
        kind = value.WhichOneof("kind")
        values[name] = getattr(value, kind)
    return values


def _fake_grid(runs):
    fake_run(runs / "digits" / "resnet18" / "seed42-jax", top1=0.9, health_score=0.75)
    fake_run(runs / "digits" / "gradattn_rope" / "seed43-torch", model="gradattn_rope", seed=43, backend="torch",
             top1=0.955, model_args={"token_dim": 16, "num_layers": 1}, health_score=0.5)  # fmt: skip
    fake_run(runs / "digits" / "gradattn_nope" / "seed42-jax", model="gradattn_nope", status="diverged")


def test_every_finished_run_is_an_hparams_trial_with_its_metrics(tmp_path):
    from tensorboard.plugins.hparams import metadata

    runs = tmp_path / "runs"
    _fake_grid(runs)
    assert tensorboard_hparams.write_hparams(runs) == 2

    rope_dir = runs / "digits" / "gradattn_rope" / "seed43-torch" / "hparams"
    loaded = load_with_tensorboard(rope_dir)
    start_tensor = loaded["tensors"][metadata.SESSION_START_INFO_TAG]
    assert start_tensor["plugin"] == metadata.PLUGIN_NAME
    start = metadata.parse_session_start_info_plugin_data(start_tensor["content"])
    assert _hparam_values(start.hparams) == {
        "dataset": "digits", "model": "gradattn_rope", "seed": 43.0, "backend": "torch",
        "model_args": "num_layers=1 token_dim=16",
    }  # fmt: skip
    assert start.group_name  # the trial's group: runs with equal hparams
    assert {tag: points for tag, points in loaded["scalars"].items()} == {
        "test/top1_pct": [[0, pytest.approx(95.5)]],
        "test/ece": [[0, pytest.approx(0.02)]],
        "gradient_flow/health_score": [[0, 0.5]],
    }
    resnet = load_with_tensorboard(runs / "digits" / "resnet18" / "seed42-jax" / "hparams")
    start = metadata.parse_session_start_info_plugin_data(resnet["tensors"][metadata.SESSION_START_INFO_TAG]["content"])
    assert _hparam_values(start.hparams)["model_args"] == "none"
    assert resnet["scalars"]["gradient_flow/health_score"] == [[0, 0.75]]
    # A diverged run has no test metrics: no HParams trial.
    assert not os.path.exists(runs / "digits" / "gradattn_nope" / "seed42-jax" / "hparams")

    experiment_events = load_with_tensorboard(runs)
    experiment = metadata.parse_experiment_plugin_data(
        experiment_events["tensors"][metadata.EXPERIMENT_TAG]["content"]
    )
    domains = {info.name: [v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for v in info.domain_discrete.values]
               for info in experiment.hparam_infos}  # fmt: skip
    assert domains == {
        "dataset": ["digits"], "model": ["gradattn_rope", "resnet18"], "seed": [42.0, 43.0],
        "backend": ["jax", "torch"], "model_args": ["none", "num_layers=1 token_dim=16"],
    }  # fmt: skip
    assert [info.name.tag for info in experiment.metric_infos] == [
        "test/top1_pct", "test/ece", "gradient_flow/health_score"]  # fmt: skip
    assert experiment.metric_infos[0].display_name == "test top-1 (%)"


def test_writing_again_updates_instead_of_adding(tmp_path):
    runs = tmp_path / "runs"
    _fake_grid(runs)
    tensorboard_hparams.write_hparams(runs)
    fake_run(runs / "digits" / "resnet18" / "seed42-jax", top1=0.8)
    fake_run(runs / "digits" / "resnet18" / "seed44-jax", seed=44)
    assert tensorboard_hparams.write_hparams(runs) == 3
    resnet_dir = runs / "digits" / "resnet18" / "seed42-jax" / "hparams"
    assert os.listdir(resnet_dir) == [tensorboard_hparams.RUN_FILE_NAME]
    assert load_with_tensorboard(resnet_dir)["scalars"]["test/top1_pct"] == [[0, pytest.approx(80.0)]]
    assert [name for name in os.listdir(runs) if "tfevents" in name] == [tensorboard_hparams.EXPERIMENT_FILE_NAME]


def test_a_run_without_the_probe_has_no_health_score(tmp_path):
    run_dir = tmp_path / "runs" / "digits" / "resnet18" / "seed42-jax"
    fake_run(run_dir, health_score=None)
    tensorboard_hparams.write_hparams(tmp_path / "runs")
    assert set(load_with_tensorboard(run_dir / "hparams")["scalars"]) == {"test/top1_pct", "test/ece"}
