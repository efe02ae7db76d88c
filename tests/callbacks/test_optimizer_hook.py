"""GradientNormRecorder used directly: any subset and order of variables."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from gradflow_testing import build_functional_model

from keras_gradattn.callbacks.optimizer_hook import GradientNormRecorder
from keras_gradattn.callbacks.optimizer_hook import installed_recorder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_apply_with_a_subset_in_another_order():
    model = build_functional_model(batchnorm=False)
    optimizer = keras.optimizers.SGD(0.0)
    optimizer.build(model.trainable_variables)
    recorder = GradientNormRecorder(optimizer, model, reduction="last")
    recorder.install()
    try:
        variables = [v for v in model.trainable_variables if v.path.startswith("stage2/")][::-1]
        rng = np.random.default_rng(0)
        grads = [rng.normal(size=v.shape).astype("float32") for v in variables]
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
        values, steps = recorder.read()
    finally:
        recorder.uninstall()
    per_layer, per_stage, global_norm = recorder.layout.split(values)
    assert steps == 1
    expected = {}
    for variable, grad in zip(variables, grads):
        layer = variable.path.rsplit("/", 1)[0]
        expected[layer] = expected.get(layer, 0.0) + float(np.sum(np.square(grad, dtype="float64")))
    for layer, value in per_layer.items():
        np.testing.assert_allclose(value, np.sqrt(expected.get(layer, 0.0)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(per_stage["stage2"], np.sqrt(sum(expected.values())), rtol=1e-5)
    assert per_stage["stage1"] == 0.0
    np.testing.assert_allclose(global_norm, np.sqrt(sum(expected.values())), rtol=1e-5)
    # Reading again without a new step gives nothing; uninstall restored all.
    assert recorder.read() is None
    assert installed_recorder(optimizer) is None
    assert "apply" not in vars(optimizer)
    assert len(optimizer.variables) == 2  # iteration and learning rate


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="an in-process TensorFlow strategy")
def test_one_step_counted_once_under_a_mirrored_strategy():
    # Installed outside the strategy's scope (as the logger's on_train_begin
    # does), the recorder's window must still be a mirrored variable: a plain
    # one is written by every replica and counts each step once per replica.
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mirrored_recorder.py")
    environment = dict(os.environ, PYTHONPATH=REPO, KERAS_BACKEND="tensorflow")
    result = subprocess.run(
        [sys.executable, script], env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["window_variable"] == "MirroredVariable"
    assert [window["steps"] for window in report["windows"]] == [3, 1]
    for window in report["windows"]:
        np.testing.assert_allclose(window["global_norm"], report["expected_global_norm"], rtol=1e-5)
    assert report["optimizer_variables_after_uninstall"] == 2  # iteration and learning rate
