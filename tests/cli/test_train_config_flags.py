"""gradattn-train's flags, config and rerun command all derive from TrainConfig's fields."""

import dataclasses
import json

import keras
import pytest

from cli.test_train_cli import assert_one_line_error
from keras_gradattn.cli import train
from keras_gradattn.training import TrainConfig
from keras_gradattn.training.config import GROUPS

pytestmark = pytest.mark.backend_independent

BACKEND = keras.backend.backend()
# A config far from the defaults in every field the command line can set.
UNUSUAL = TrainConfig(
    dataset="synthetic", model="resnet18", epochs=3, batch_size=16, learning_rate=0.01, weight_decay=0.0,
    decoupled_weight_decay=True, seed=7, data_dir="/data here", output_dir="runs/x y", split="official",
    precision="mixed_bfloat16", jit_compile="off", max_train_samples=40, resume=False, distribute=True,
    pipeline="pydataset", model_args={"stem": "cifar", "stage_blocks": (1, 1, 1, 1)},
    dataset_args={"image_size": 16}, verbose=2, log_gradients=0, probe_batches=0,
)  # fmt: skip


def _parse(argv, record=None):
    parser = train.build_parser()
    return train.config_from_args(parser.parse_args(argv, train._namespace_from(record or {})))


def test_every_field_has_a_flag_in_its_group():
    parser = train.build_parser()
    titles = [group.title for group in parser._action_groups]
    assert set(GROUPS) <= set(titles)
    for field in dataclasses.fields(TrainConfig):
        group = next(group for group in parser._action_groups if group.title == field.metadata["group"])
        flags = [flag for action in group._group_actions for flag in action.option_strings]
        assert field.metadata["flag"] in flags, field.name


def test_rerun_command_parses_back_to_the_same_config():
    import shlex

    command = train.rerun_command(UNUSUAL, BACKEND)
    argv = shlex.split(command)[1:]
    assert argv[-2:] == ["--backend", BACKEND]
    assert _parse([*argv, "--verbose", "2"]) == UNUSUAL


def test_defaults_are_the_config_defaults():
    assert _parse(["--verbose", "2"]) == TrainConfig()


def _as_json(config):
    # A config read from JSON holds lists where it was given tuples.
    return json.loads(json.dumps(dataclasses.asdict(config)))


def test_config_file_settings_and_flags_beside_it(tmp_path):
    record = dataclasses.asdict(UNUSUAL) | {"backend": BACKEND}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"train_config": record, "backend": BACKEND}))
    file_record = train.read_config_file(str(path))
    assert file_record["backend"] == BACKEND
    assert _as_json(_parse(["--verbose", "2"], file_record)) == _as_json(UNUSUAL)
    changed = _parse(["--epochs", "9", "--model-arg", "stem=imagenet", "--resume", "--verbose", "2"], file_record)
    assert _as_json(changed) == _as_json(dataclasses.replace(
        UNUSUAL, epochs=9, resume=True, model_args={"stem": "imagenet", "stage_blocks": (1, 1, 1, 1)}
    ))


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, ["--config", "No such file"]),
        ("{not json", ["--config", "is not JSON"]),
        ('{"epochs": 2, "depth": 50}', ["--config", "unknown setting(s) depth", "epochs"]),
        ('[1, 2]', ["expected a JSON object of settings"]),
        ('{"backend": "theano"}', ["backend 'theano' is not one of"]),
    ],
)
def test_bad_config_file_is_one_line(content, expected, tmp_path, capsys):
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    run_dir = tmp_path / "run"
    code = train.main(["--config", path, "--output-dir", run_dir, "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, expected, run_dir)


def test_config_file_values_are_validated_and_reported_by_flag(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text('{"learning_rate": -1}')
    run_dir = tmp_path / "run"
    code = train.main(["--config", path, "--output-dir", run_dir, "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, ["--lr must be positive, got -1"], run_dir)
