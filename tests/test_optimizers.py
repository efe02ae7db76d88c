import keras
import numpy as np
import pytest

from keras_gradattn import AdamL2
from testing_utils import to_numpy


def reference_adam_l2(weights, gradients, learning_rate, l2, steps,
                      beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Adam with coupled L2 (`g + l2 * w` before the moments, as
    torch.optim.Adam(weight_decay=l2)) on a fixed gradient, in NumPy, with
    Keras' epsilon placement: epsilon added to sqrt(v)."""
    w = weights.astype(np.float64).copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t in range(1, steps + 1):
        g = gradients + l2 * w
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        alpha = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        w = w - alpha * m / (np.sqrt(v) + epsilon)
    return w


@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_matches_pytorch_style_coupled_l2(l2):
    rng = np.random.default_rng(0)
    initial = rng.normal(size=(4, 3)).astype("float32")
    gradient = rng.normal(size=(4, 3)).astype("float32")
    variable = keras.Variable(initial)
    optimizer = AdamL2(learning_rate=0.1, l2=l2)
    for _ in range(3):
        optimizer.apply([keras.ops.convert_to_tensor(gradient)], [variable])
    expected = reference_adam_l2(initial, gradient, 0.1, l2, steps=3)
    np.testing.assert_allclose(to_numpy(variable), expected, rtol=1e-5, atol=1e-6)


def test_l2_differs_from_decoupled_weight_decay():
    initial = np.ones((2, 2), "float32")
    gradient = keras.ops.convert_to_tensor(np.full((2, 2), 0.1, "float32"))
    coupled, decoupled = keras.Variable(initial), keras.Variable(initial)
    coupled_adam = AdamL2(learning_rate=0.1, l2=0.5)
    decoupled_adam = keras.optimizers.Adam(learning_rate=0.1, weight_decay=0.5)
    for _ in range(2):
        coupled_adam.apply([gradient], [coupled])
        decoupled_adam.apply([gradient], [decoupled])
    assert not np.allclose(to_numpy(coupled), to_numpy(decoupled))


def test_uses_the_backends_fast_adam():
    # On PyTorch Keras' Adam is a subclass with a fused update; AdamL2 must
    # keep it (and stay an Adam everywhere).
    assert isinstance(AdamL2(), type(keras.optimizers.Adam()))
    assert isinstance(AdamL2(), keras.optimizers.Adam)


def test_config_round_trip_and_validation():
    optimizer = AdamL2(learning_rate=3e-4, l2=2e-4, clipnorm=1.0)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is AdamL2
    assert restored.l2 == 2e-4 and restored.clipnorm == 1.0
    with pytest.raises(ValueError, match=r"`l2` must be >= 0. Received: -1"):
        AdamL2(l2=-1)
