import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

import keras_gradattn
from keras_gradattn import create_model
from testing_utils import SMALL_BACKBONE
from testing_utils import SMALL_ENCODER
from testing_utils import compile_fast
from testing_utils import to_numpy

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKENDS = ("tensorflow", "jax", "torch")

# Between them these cover every layer class of the package.
SAVED_MODELS = {
    "gradattn_rope": {"stem": "cifar", **SMALL_ENCODER},
    "gradattn_learned_pe": {"norm_first": True, "taps": [1, 2, 4], **SMALL_ENCODER},
    "cbam_resnet18": {},
    "se_resnet18": {},
    # The learned skip connections, one with the GradAttn head.
    "gradattn_nope": {"connection": "hyper", "expansion_rate": 2, **SMALL_ENCODER},
    "rezero_resnet18": {},
    "layerscale_resnet18": {},
    "highway_resnet18": {},
    "dwa_resnet18": {},
    "attnres_resnet18": {},
}


def build(name, **overrides):
    return create_model(name, num_classes=4, input_shape=(20, 20, 3),
                        **SMALL_BACKBONE, **overrides)


def images(size=3, seed=0):
    return np.random.default_rng(seed).random((size, 20, 20, 3), dtype=np.float32)


def train_briefly(model):
    # Trained weights and BatchNorm statistics, so that loading checks more
    # than the initial values.
    compile_fast(model)
    labels = np.arange(8) % 4
    model.fit(images(8, seed=1), labels, epochs=1, batch_size=4, verbose=0)
    return model


@pytest.mark.parametrize("name", sorted(SAVED_MODELS))
def test_config_round_trip(name):
    model = build(name, **SAVED_MODELS[name])
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert [w.path for w in clone.weights] == [w.path for w in model.weights]


@pytest.mark.parametrize("name", ["gradattn_rope", "cbam_resnet18"])
def test_keras_file_round_trip_without_warnings(name, tmp_path):
    model = train_briefly(build(name, **SAVED_MODELS[name]))
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restored = keras.saving.load_model(path)
    assert not [str(w.message) for w in caught if "keras" in w.filename]
    assert type(restored) is type(model)
    assert isinstance(restored.optimizer, keras_gradattn.AdamL2)
    x = images()
    np.testing.assert_allclose(
        to_numpy(restored(x, training=False)), to_numpy(model(x, training=False)), atol=1e-6
    )
    # The optimizer state travels too, so training resumes where it stopped.
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 2


def test_saved_under_this_backend_loads_under_the_others(tmp_path):
    this_backend = keras.backend.backend()
    x = images()
    for name, overrides in SAVED_MODELS.items():
        model = train_briefly(build(name, **overrides))
        model.save(str(tmp_path / f"{name}.keras"))
        np.save(tmp_path / f"{name}.inputs.npy", x)
        np.save(tmp_path / f"{name}.logits.npy", to_numpy(model(x, training=False)))

    others = [b for b in BACKENDS if b != this_backend]
    processes = {
        backend: subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(__file__), "cross_backend_load.py"),
             str(tmp_path)],
            env={**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": REPO_ROOT},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for backend in others
    }
    for backend, process in processes.items():
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"{backend} failed to load:\n{stderr[-3000:]}"
        report = json.loads(stdout.strip().splitlines()[-1])
        assert report["backend"] == backend
        assert set(report["differences"]) == set(SAVED_MODELS)
        for name, difference in report["differences"].items():
            assert difference < 1e-4, f"{name} saved under {this_backend}, loaded under {backend}: {difference}"
