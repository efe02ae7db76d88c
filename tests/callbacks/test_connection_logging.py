"""The learned skip-connection values reach TensorBoard once per epoch, under
`connection/`, and gradattn-analyze draws them."""

import numpy as np
import pytest

from keras_gradattn import create_model
from keras_gradattn.analysis.event_reader import read_events
from keras_gradattn.callbacks import GradientNormLogger
from keras_gradattn.cli.analyze import main as analyze
from testing_utils import SMALL_BACKBONE
from testing_utils import compile_fast


def data(size=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((size, 20, 20, 3), dtype=np.float32), np.arange(size) % 3


@pytest.mark.parametrize(
    "connection, tag",
    [("rezero", "stage1/block1/alpha"), ("attnres", "stage2/block2/weight_input"),
     ("highway", "stage3/block1/gate_mean")],
)
def test_connection_values_are_logged_per_epoch_and_drawn(tmp_path, connection, tag):
    model = compile_fast(create_model(f"{connection}_resnet18", num_classes=3, input_shape=(20, 20, 3),
                                      stage_blocks=(2, 2, 1, 1), **SMALL_BACKBONE))
    images, labels = data()
    run = tmp_path / "run"
    logger = GradientNormLogger(run / "logs", update_freq="epoch", attention_batch=images[:4])
    model.fit(images, labels, batch_size=4, epochs=2, verbose=0, callbacks=[logger])

    events = read_events(str(run))
    steps, values = events.scalars[f"connection/{tag}"]
    assert list(steps) == [2, 4]
    expected = model.backbone.connection_parameters(images[:4])
    np.testing.assert_allclose(values[-1], expected[tag], rtol=1e-5, atol=1e-7)
    assert logger.epoch_records[-1]["connection"][tag] == pytest.approx(expected[tag], rel=1e-5, abs=1e-7)
    assert set(events.scalar_tags("connection/")) == {f"connection/{key}" for key in expected}
    if connection == "rezero":
        assert values[-1] != 0.0  # alpha left its initial value

    output = tmp_path / "analysis"
    assert analyze([str(run), "--output", str(output)]) == 0
    figure = output / "run_connection.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_residual_and_plain_models_log_no_connection_values(tmp_path):
    model = compile_fast(create_model("resnet18", num_classes=3, input_shape=(20, 20, 3),
                                      stage_blocks=(1, 1, 1, 1), **SMALL_BACKBONE))
    images, labels = data()
    logger = GradientNormLogger(tmp_path, update_freq="epoch", attention_batch=images[:4])
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0, callbacks=[logger])
    assert not read_events(str(tmp_path)).scalar_tags("connection/")
    assert "connection" not in logger.epoch_records[-1]
