"""The JAX process group's pieces that one process can check (the group
itself runs in tests/training/test_multi_process.py)."""

import os
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_gradattn.training.errors import TrainingSetupError
from keras_gradattn.training.processes import ProcessGroupSpec
from keras_gradattn.training.trainer import _test_rows

needs_jax = pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX process group")


class _Processes:
    def __init__(self, num_processes, process_id=0):
        self.num_processes, self.process_id = num_processes, process_id


@pytest.mark.parametrize("count", [1, 2, 9, 10, 11, 60])
@pytest.mark.parametrize("num_processes", [1, 2, 3, 4])
def test_test_shares_are_equal_and_cover_every_row_once(count, num_processes):
    if count < num_processes:
        pytest.skip("fewer test examples than processes")
    shares = [_test_rows(count, _Processes(num_processes, index)) for index in range(num_processes)]
    # Equal lengths: every JAX process runs the same batches.
    assert len({len(share) for share in shares}) == 1
    # Each process's own rows, then at most one repeat of its last row.
    for index, share in enumerate(shares):
        own = np.arange(index, count, num_processes)
        np.testing.assert_array_equal(share[: len(own)], own)
        assert set(share[len(own) :]) <= {own[-1]}
    assert sorted(set(np.concatenate(shares))) == list(range(count))


def _spec(process_id, port, timeout=1.0):
    return ProcessGroupSpec(
        num_processes=2, process_id=process_id, coordinator=f"127.0.0.1:{port}", launcher="flags",
        timeout_seconds=timeout,
    )  # fmt: skip


@needs_jax
def test_a_busy_coordinator_port_is_a_one_line_error():
    from keras_gradattn.training import jax_processes

    with socket.create_server(("", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(TrainingSetupError) as error:
            jax_processes._check_coordinator(_spec(0, port))
    message = str(error.value)
    assert "\n" not in message and "could not listen on the coordinator" in message and str(port) in message


@needs_jax
def test_an_unreachable_coordinator_fails_within_the_timeout():
    from keras_gradattn.training import jax_processes

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(TrainingSetupError) as error:
        jax_processes._check_coordinator(_spec(1, port, timeout=1.5))
    assert 1.5 <= time.monotonic() - started < 10
    message = str(error.value)
    assert "\n" not in message and "could not reach the coordinator" in message and "within 1.5 s" in message


@needs_jax
def test_a_listening_coordinator_is_reached():
    from keras_gradattn.training import jax_processes

    with socket.create_server(("127.0.0.1", 0)) as server:
        jax_processes._check_coordinator(_spec(1, server.getsockname()[1]))


@needs_jax
def test_local_rows_predict_is_plain_predict_on_one_process():
    from keras_gradattn.training import jax_processes

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    inputs = np.random.default_rng(0).normal(size=(7, 3)).astype("float32")
    expected = model.predict(inputs, batch_size=4, verbose=0)
    model.predict_function = None
    jax_processes.predict_local_rows(model)
    np.testing.assert_allclose(model.predict(inputs, batch_size=4, verbose=0), expected, rtol=1e-6)
    assert model.predict_function.keeps_local_rows


@needs_jax
def test_a_lost_peer_is_told_from_other_errors():
    import jax

    from keras_gradattn.training import jax_processes

    # The message gloo gives when the other process was killed (seen in the multi-process tests).
    gloo = "UNKNOWN: Gloo all-reduce failed: [external/gloo/gloo/transport/tcp/pair.cc:538] Read error [127.0.0.1]:5035: Connection reset by peer"  # noqa: E501
    assert jax_processes.lost_process_reason(ValueError(gloo)) == (
        "Gloo all-reduce failed: Read error [127.0.0.1]:5035: Connection reset by peer"
    )
    assert jax_processes.lost_process_reason(jax.errors.JaxRuntimeError(gloo)).startswith("Gloo all-reduce")
    assert jax_processes.lost_process_reason(ValueError("operands could not be broadcast")) is None
    assert jax_processes.lost_process_reason(KeyError(gloo)) is None


@needs_jax
def test_importing_the_package_computes_nothing():
    # jax.distributed.initialize must come before JAX's first computation;
    # the command line imports the models and optimizers before it joins.
    # (optimizers.py once created an Adam at import.)
    code = (
        "import keras_gradattn.cli.train, keras_gradattn.models, keras_gradattn.optimizers\n"
        "from jax._src import xla_bridge\n"
        "assert not xla_bridge.backends_are_initialized(), 'a JAX backend was initialised at import'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "KERAS_BACKEND": "jax"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
