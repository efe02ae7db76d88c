"""FusedBatchNormalization agrees with Keras' own BatchNormalization.

On PyTorch it runs another kernel in training (keras_gradattn.backend); on
JAX and TensorFlow Keras' code, so these tests guard the PyTorch fast path
and check that the others are untouched.
"""

import keras
import numpy as np
import pytest

from keras_gradattn import backend
from keras_gradattn.layers import FusedBatchNormalization
from testing_utils import assert_serializable
from testing_utils import to_numpy

BACKEND = keras.backend.backend()


def images(shape, seed=0, layout="nhwc"):
    values = np.random.default_rng(seed).normal(1.0, 2.0, size=shape).astype("float32")
    tensor = keras.ops.convert_to_tensor(values)
    if layout == "nchw_memory" and BACKEND == "torch":
        # What Keras' own PyTorch convolution returns: NCHW memory seen as NHWC.
        tensor = keras.ops.convert_to_tensor(np.ascontiguousarray(values.transpose(0, 3, 1, 2))).permute(0, 2, 3, 1)
    return tensor


def test_the_fast_path_exists_on_torch_only_and_can_be_switched_off(monkeypatch):
    arguments = (images((2, 3, 3, 4)), keras.ops.ones((4,)), keras.ops.zeros((4,)), 1e-5)
    fused = backend.batch_normalization_in_training(*arguments)
    assert (fused is not None) == (BACKEND == "torch")
    monkeypatch.setenv(backend.PORTABLE_LAYERS_VARIABLE, "1")
    assert backend.batch_normalization_in_training(*arguments) is None


@pytest.mark.parametrize("layout", ["nhwc", "nchw_memory"])
def test_batch_norm_trains_like_keras(layout):
    kwargs = dict(momentum=0.9, epsilon=1e-5)
    fused, plain = FusedBatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    shape = (8, 5, 6, 7)
    for layer in (fused, plain):
        layer.build(shape)
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=w.shape).astype("float32") for w in plain.weights]
    weights[3] = np.abs(weights[3]) + 0.5  # a moving variance
    fused.set_weights(weights)
    plain.set_weights(weights)
    inputs = images(shape, layout=layout)
    outputs = [to_numpy(layer(inputs, training=True)) for layer in (fused, plain)]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)
    # The moving averages: this batch's mean and biased variance, Keras' momentum.
    for fused_weight, plain_weight in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(fused_weight, plain_weight, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        fused.get_weights()[3], 0.9 * weights[3] + 0.1 * np.var(to_numpy(inputs), axis=(0, 1, 2)), rtol=1e-5
    )
    # Inference uses the moving statistics, as Keras does.
    np.testing.assert_allclose(
        to_numpy(fused(inputs, training=False)), to_numpy(plain(inputs, training=False)), rtol=1e-5, atol=1e-5
    )


def _small_network(norm):
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv"),
        norm(name="norm"),
        keras.layers.ReLU(),
        keras.layers.Conv2D(5, 3, strides=2, use_bias=False, name="conv_2"),
        norm(name="norm_2"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, name="dense"),
    ])  # fmt: skip


def test_a_training_step_updates_every_weight_like_keras():
    fast = _small_network(FusedBatchNormalization)
    plain = _small_network(keras.layers.BatchNormalization)
    plain.set_weights(fast.get_weights())
    rng = np.random.default_rng(4)
    x = rng.normal(size=(16, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=(16,))
    for model in (fast, plain):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        model.train_on_batch(x, y)
        model.train_on_batch(x, y)
    for fast_weight, plain_weight in zip(fast.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(fast_weight, plain_weight, rtol=1e-4, atol=1e-5)


def test_it_serializes_and_keeps_keras_weights():
    assert_serializable(FusedBatchNormalization(momentum=0.8))
    # The same weights under the same names as Keras' layers: files interchange.
    fast, plain = FusedBatchNormalization(name="bn"), keras.layers.BatchNormalization(name="bn")
    for layer in (fast, plain):
        layer.build((1, 2, 2, 3))
    assert [w.path for w in fast.weights] == [w.path for w in plain.weights]
