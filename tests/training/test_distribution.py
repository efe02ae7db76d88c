"""--distribute: data-parallel training equals one device (same global batch)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_gradattn.training.distribution import TORCH_REFUSAL
from keras_gradattn.training.distribution import pad_evaluation_batches
from keras_gradattn.training.distribution import setup_distribution
from keras_gradattn.training.errors import TrainingSetupError

BACKEND = keras.backend.backend()
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def test_torch_is_refused_with_a_way_out():
    with pytest.raises(TrainingSetupError) as error:
        setup_distribution("torch", enabled=True)
    message = str(error.value)
    assert message == TORCH_REFUSAL and "\n" not in message
    assert "several processes" in message and "torchrun" in message and "--num-processes" in message


def test_single_device_when_not_asked():
    distribution = setup_distribution(BACKEND, enabled=False)
    assert distribution.num_replicas == 1 and distribution.batch_multiple == 1


def test_evaluation_padding_has_zero_weights():
    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            count = 4 if index == 0 else 3
            return np.ones((count, 2, 2, 1), "float32"), np.arange(count, dtype="int32")

    padded = pad_evaluation_batches(Batches(), multiple=2)
    images, labels, weights = padded[1]
    assert images.shape == (4, 2, 2, 1) and labels.tolist() == [0, 1, 2, 0]
    assert weights.tolist() == [1, 1, 1, 0] and not images[3].any()
    assert padded[0][2].tolist() == [1, 1, 1, 1]


@pytest.mark.skipif(BACKEND not in ("jax", "tensorflow"), reason="data parallelism: JAX and TensorFlow")
@pytest.mark.parametrize("placement", ["host", "device"])
def test_two_devices_train_like_one(placement, tmp_path):
    environment = dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED="1")
    if BACKEND == "jax":
        environment["XLA_FLAGS"] = (
            environment.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
        ).strip()
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "distributed_vs_single.py"), str(tmp_path), placement],
        env=environment, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    differences = json.loads(result.stdout.strip().splitlines()[-1])
    assert differences["replicas"] == [1, 2]
    assert differences["epochs"] == [3, 3]
    # The digits test split (270 examples) is padded to whole device batches
    # for JAX; metrics still count every real example once.
    assert differences["test_examples"][0] == differences["test_examples"][1]
    # Float noise only: reductions are split differently over devices.
    assert differences["loss"] < 1e-4
    assert differences["weights"] < 1e-4
    assert differences["val_accuracy"] <= 1 / 269
    assert differences["test_nll"] < 1e-3
    # Every step's gradient norms (global, per stage, per layer), logged by
    # the optimizer hook: the replicas' applied gradients are the one
    # device's, within the same float noise as the loss.
    assert differences["gradient_norm_tags"][0] > 10 and differences["gradient_norm_tags"][1]
    assert differences["gradient_norms"] < 1e-3
