"""keras_gradattn.training.tensorflow_processes: the parts that need no second
process (test_multi_process.py runs real ones)."""

import pytest

from keras_gradattn.training.processes import ProcessGroupSpec

tf = pytest.importorskip("tensorflow")

from keras_gradattn.training import tensorflow_processes  # noqa: E402


def test_workers_from_the_coordinator_listen_on_consecutive_ports():
    spec = ProcessGroupSpec(num_processes=3, process_id=1, coordinator="127.0.0.1:29500", launcher="flags")
    assert tensorflow_processes.worker_addresses(spec) == ["127.0.0.1:29500", "127.0.0.1:29501", "127.0.0.1:29502"]
    ipv6 = ProcessGroupSpec(num_processes=2, process_id=0, coordinator="[::1]:29500", launcher="flags")
    assert tensorflow_processes.worker_addresses(ipv6) == ["[::1]:29500", "[::1]:29501"]


def test_a_launchers_worker_list_is_kept():
    workers = ("hosta:2222", "hostb:2222")
    spec = ProcessGroupSpec(num_processes=2, process_id=1, coordinator="hosta:2222", launcher="tf_config",
                            worker_addresses=workers)  # fmt: skip
    assert tensorflow_processes.worker_addresses(spec) == list(workers)


def test_a_lost_peer_is_recognised_in_one_line():
    # The error a surviving worker's fit raised when the other was SIGKILLed (measured).
    error = tf.errors.UnavailableError(
        None, None,
        "Graph execution error:\n\nDetected at node CollectiveReduceV2\nCollective ops is aborted by: Error "
        "reported from /job:worker/task:1: The following tasks are unhealthy (stopped sending heartbeats):\n"
        "/job:worker/replica:0/task:1",
    )  # fmt: skip
    reason = tensorflow_processes.lost_process_reason(error)
    assert reason.startswith("Collective ops is aborted by") and "\n" not in reason
    assert tensorflow_processes.lost_process_reason(ValueError("shapes differ")) is None
