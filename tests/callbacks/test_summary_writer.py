import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_gradattn.analysis.event_reader import read_events
from keras_gradattn.callbacks.gradient_layout import GradientLayout
from keras_gradattn.callbacks.summary_writer import create_summary_writer
from keras_gradattn.callbacks.summary_writer import sanitize_tag


@pytest.mark.parametrize("implementation", ["python", "tensorflow"])
def test_written_events_read_back(tmp_path, implementation):
    if implementation == "tensorflow":
        pytest.importorskip("tensorflow")
    writer = create_summary_writer(tmp_path, implementation=implementation)
    for step in (1, 2, 3):
        writer.scalar("grad_norm/stage1/block1/conv", 0.5 * step, step)
    values = np.random.default_rng(0).normal(size=1000)
    writer.histogram("grad_hist/stage1/block1/conv/kernel", values, step=3)
    writer.flush()
    writer.close()

    events = read_events(tmp_path)
    steps, scalars = events.scalars["grad_norm/stage1/block1/conv"]
    assert steps.tolist() == [1, 2, 3]
    np.testing.assert_allclose(scalars, [0.5, 1.0, 1.5], rtol=1e-6)
    ((step, buckets),) = events.histograms["grad_hist/stage1/block1/conv/kernel"]
    assert step == 3
    assert buckets[:, 2].sum() == pytest.approx(1000)
    assert buckets[0, 0] == pytest.approx(values.min(), abs=1e-6)
    assert buckets[-1, 1] == pytest.approx(values.max(), abs=1e-6)


def _write_steps(log_dir, tag, steps):
    writer = create_summary_writer(log_dir, implementation="python")
    for step in steps:
        writer.scalar(tag, float(step), step)
    writer.close()
    return writer.path


@pytest.mark.parametrize("damage", ["flipped_byte", "truncated"])
def test_reading_stops_at_a_damaged_record(tmp_path, damage):
    tag = "grad_norm/stage1/conv"
    path = _write_steps(tmp_path, tag, range(1, 11))
    data = bytearray(open(path, "rb").read())
    if damage == "flipped_byte":
        # Inside the tag of step 6 (record 0 is the file-version event): a
        # reader that skipped the CRCs would return step 6 under another tag.
        position = -1
        for _ in range(6):
            position = data.index(tag.encode(), position + 1)
        data[position + 1] ^= 0x01
        expected_message, expected_steps = "crc32", [1, 2, 3, 4, 5]
    else:
        del data[-3:]
        expected_message, expected_steps = "truncated", list(range(1, 10))
    open(path, "wb").write(bytes(data))

    with pytest.warns(UserWarning, match=expected_message):
        events = read_events(tmp_path)
    assert list(events.scalars) == [tag]
    assert events.scalars[tag][0].tolist() == expected_steps


def test_python_writer_and_reader_import_no_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "from keras_gradattn.analysis.event_reader import read_events\n"
        "from keras_gradattn.callbacks.summary_writer import create_summary_writer\n"
        f"writer = create_summary_writer({str(tmp_path)!r}, implementation='python')\n"
        "writer.scalar('a', 1.0, 1); writer.histogram('h', [1.0, 2.0], 1); writer.close()\n"
        f"assert list(read_events({str(tmp_path)!r}).scalars) == ['a']\n"
        "print('tensorflow' in sys.modules)\n"
    )
    backend = "jax" if keras.backend.backend() == "tensorflow" else keras.backend.backend()
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_bad_implementation(tmp_path):
    with pytest.raises(ValueError, match="received 'numpy'"):
        create_summary_writer(tmp_path, implementation="numpy")


def test_sanitize_tag():
    assert sanitize_tag("grad_norm/stage 1/conv:0") == "grad_norm/stage_1/conv_0"


def test_layout_groups_variables_by_layer_and_stage():
    layout = GradientLayout(
        ["sub/stage2/block1/conv1/kernel", "sub/stage2/block1/conv1/bias", "sub/stage2/bn/gamma", "sub/pe", "sub/head/kernel"],
        model_name="sub",
    )
    assert layout.layers == ["stage2/block1/conv1", "stage2/bn", "sub", "head"]
    assert layout.stages == ["stage2", "sub", "head"]
    matrix = layout.assignment()
    assert matrix.shape == (5, 4 + 3 + 1)
    assert matrix.sum(axis=1).tolist() == [3.0] * 5  # one layer, one stage, global
    per_layer, per_stage, global_value = layout.split(np.sqrt(np.array([9.0, 16.0, 0.0, 1.0, 0.0]) @ matrix))
    assert per_layer["stage2/block1/conv1"] == pytest.approx(5.0)
    assert per_stage["stage2"] == pytest.approx(5.0)
    assert global_value == pytest.approx(np.sqrt(26.0))
