"""`resolve_process_group`: flags, launcher environments, and one-line errors."""

import json

import pytest

from keras_gradattn.training import TrainConfig
from keras_gradattn.training.errors import TrainingSetupError
from keras_gradattn.training.processes import resolve_process_group

pytestmark = pytest.mark.backend_independent


def test_no_flags_and_no_launcher_is_one_process():
    spec = resolve_process_group(environ={})
    assert (spec.num_processes, spec.process_id, spec.multi_process, spec.launcher) == (1, 0, False, "single")


def test_flags():
    spec = resolve_process_group(4, 3, "10.0.0.1:29500", environ={})
    assert (spec.num_processes, spec.process_id, spec.launcher) == (4, 3, "flags")
    assert (spec.coordinator_host, spec.coordinator_port, spec.is_chief) == ("10.0.0.1", 29500, False)


def test_torchrun_environment():
    environ = {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "1234"}
    spec = resolve_process_group(environ=environ)
    assert (spec.num_processes, spec.process_id, spec.coordinator, spec.launcher) == (2, 1, "node0:1234", "torchrun")


def test_keras_environment_takes_the_first_address_as_coordinator():
    environ = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1,b:2,c:3", "KERAS_DISTRIBUTION_NUM_PROCESSES": "3",
               "KERAS_DISTRIBUTION_PROCESS_ID": "2"}  # fmt: skip
    spec = resolve_process_group(environ=environ)
    assert (spec.num_processes, spec.process_id, spec.coordinator, spec.launcher) == (3, 2, "a:1", "keras")
    assert spec.worker_addresses == ("a:1", "b:2", "c:3")


def test_tf_config_environment():
    tf_config = {"cluster": {"worker": ["w0:2222", "w1:2222"]}, "task": {"type": "worker", "index": 1}}
    spec = resolve_process_group(environ={"TF_CONFIG": json.dumps(tf_config)})
    assert (spec.num_processes, spec.process_id, spec.coordinator, spec.launcher) == (2, 1, "w0:2222", "tf_config")


def test_flags_win_over_the_environment():
    environ = {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "1234"}
    spec = resolve_process_group(process_id=0, environ=environ)
    assert (spec.num_processes, spec.process_id, spec.coordinator, spec.launcher) == (2, 0, "node0:1234", "flags")


def test_ipv6_coordinator_keeps_its_brackets():
    spec = resolve_process_group(2, 0, "[::1]:29500", environ={})
    assert (spec.coordinator, spec.coordinator_host, spec.coordinator_port) == ("[::1]:29500", "::1", 29500)


@pytest.mark.parametrize(
    "arguments, environ, message",
    [
        ((2, 2, "h:1"), {}, "--process-id must be an integer from 0 to 1 (--num-processes 2), got 2."),
        ((2, -1, "h:1"), {}, "--process-id must be an integer from 0 to 1"),
        ((0, 0, "h:1"), {}, "--num-processes must be a positive integer, got 0."),
        ((2, 0, None), {}, "--num-processes 2 needs --coordinator HOST:PORT"),
        ((2, 0, "h"), {}, "--coordinator must be HOST:PORT with a port from 1 to 65535"),
        ((2, 0, "h:70000"), {}, "--coordinator must be HOST:PORT with a port from 1 to 65535"),
        ((None, None, None), {"WORLD_SIZE": "two"}, "WORLD_SIZE must be an integer, got 'two'."),
        ((None, None, None), {"TF_CONFIG": "{"}, "TF_CONFIG must be JSON with cluster.worker"),
        ((None, None, None), {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:1"]},
                                                        "task": {"type": "ps", "index": 0}})},
         "TF_CONFIG task.type must be 'worker'"),
    ],
)  # fmt: skip
def test_bad_groups_are_one_line_errors(arguments, environ, message):
    with pytest.raises(TrainingSetupError) as error:
        resolve_process_group(*arguments, environ=environ)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_timeout_must_be_positive():
    with pytest.raises(TrainingSetupError, match="--process-timeout must be a positive number of seconds"):
        resolve_process_group(2, 0, "h:1", timeout_seconds=0, environ={})


def test_a_launcher_environment_is_ignored_without_distribute():
    config = TrainConfig()
    environ = {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "1234"}
    assert config.process_group(environ=environ).num_processes == 1
    assert TrainConfig(distribute=True).process_group(environ=environ).num_processes == 2
