import keras
import numpy as np
import pytest

from keras_gradattn import AdamL2
from testing_utils import to_numpy


# A tiny epsilon: Keras adds it to sqrt(v), PyTorch to the bias-corrected
# sqrt(v); at the default 1e-7 that placement alone moves a coordinate with a
# small gradient by more than the tolerance below.
EPSILON = 1e-10
LEARNING_RATE = 0.1
STEPS = 5


def pytorch_adam_coupled_l2(weights, gradients, learning_rate, l2, epsilon,
                            beta_1=0.9, beta_2=0.999, clipnorm=None):
    """torch.optim.Adam(weight_decay=l2) in NumPy (its single-tensor update):
    `g + l2 * w` enters the moments; per-step gradients `gradients[t]` for
    every variable; `clipnorm` clips each gradient, as Keras, before L2."""
    weights = [w.astype(np.float64) for w in weights]
    first = [np.zeros_like(w) for w in weights]
    second = [np.zeros_like(w) for w in weights]
    for step, step_gradients in enumerate(gradients, start=1):
        for i, gradient in enumerate(step_gradients):
            gradient = gradient.astype(np.float64)
            if clipnorm is not None:
                gradient = gradient * clipnorm / max(np.linalg.norm(gradient), clipnorm)
            gradient = gradient + l2 * weights[i]
            first[i] = beta_1 * first[i] + (1 - beta_1) * gradient
            second[i] = beta_2 * second[i] + (1 - beta_2) * gradient**2
            step_size = learning_rate / (1 - beta_1**step)
            denominator = np.sqrt(second[i]) / np.sqrt(1 - beta_2**step) + epsilon
            weights[i] = weights[i] - step_size * first[i] / denominator
    return weights


def random_problem(seed=0):
    """Two variables of mixed sign and a different gradient at every step, so
    that the L2 term and the moments both matter (with a constant gradient
    Adam's step barely depends on the gradient's size)."""
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (5,)]
    weights = [rng.normal(size=shape).astype("float32") for shape in shapes]
    gradients = [
        [rng.normal(size=shape).astype("float32") for shape in shapes]
        for _ in range(STEPS)
    ]
    return weights, gradients


def run_adam_l2(weights, gradients, **kwargs):
    variables = [keras.Variable(w) for w in weights]
    optimizer = AdamL2(learning_rate=LEARNING_RATE, epsilon=EPSILON, **kwargs)
    for step_gradients in gradients:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in step_gradients], variables)
    return [to_numpy(v) for v in variables]


@pytest.mark.parametrize("l2, clipnorm", [(0.0, None), (0.5, None), (0.05, None), (0.5, 1.0)])
def test_matches_pytorch_adam_with_coupled_l2(l2, clipnorm):
    weights, gradients = random_problem()
    result = run_adam_l2(weights, gradients, l2=l2, clipnorm=clipnorm)
    expected = pytorch_adam_coupled_l2(
        weights, gradients, LEARNING_RATE, l2, EPSILON, clipnorm=clipnorm
    )
    # The tolerance is float32's: Keras computes the bias corrections
    # 1 - beta**t in float32, where 0.999 rounds at the 1e-8 level and the
    # first step's 1e-3 correction makes that a 1e-5 relative error in the
    # step size.
    for value, reference in zip(result, expected):
        np.testing.assert_allclose(value, reference, rtol=1e-5, atol=1e-5)
    if l2:
        # The comparison can tell the L2 term apart: it moves the weights by
        # a hundred times the tolerance or more.
        without_l2 = pytorch_adam_coupled_l2(
            weights, gradients, LEARNING_RATE, 0.0, EPSILON, clipnorm=clipnorm
        )
        assert max(np.abs(a - b).max() for a, b in zip(expected, without_l2)) > 1e-3


def test_numpy_reference_is_pytorchs_adam():
    torch = pytest.importorskip("torch")
    weights, gradients = random_problem(seed=1)
    parameters = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    optimizer = torch.optim.Adam(parameters, lr=LEARNING_RATE, eps=EPSILON, weight_decay=0.5)
    for step_gradients in gradients:
        for parameter, gradient in zip(parameters, step_gradients):
            parameter.grad = torch.tensor(gradient, dtype=torch.float64)
        optimizer.step()
    expected = pytorch_adam_coupled_l2(weights, gradients, LEARNING_RATE, 0.5, EPSILON)
    for parameter, reference in zip(parameters, expected):
        np.testing.assert_allclose(parameter.detach().numpy(), reference, rtol=1e-12, atol=1e-12)


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
