"""scripts/profile_jax_step.py: it finds every convolution of a step, and refuses bad flags (not its figures)."""

import importlib.util
import os

import pytest

from testing_utils import REPOSITORY

pytestmark = pytest.mark.backend_independent

_spec = importlib.util.spec_from_file_location("profile_jax_step", os.path.join(REPOSITORY, "scripts", "profile_jax_step.py"))
profile_jax_step = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(profile_jax_step)


def test_every_convolution_of_forward_and_backward_is_found_in_nested_calls():
    import jax
    import jax.numpy as jnp

    def convolve(x, kernel):
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    @jax.jit  # a nested call, as Keras' layers and jax.checkpoint make them
    def inner(x, kernel):
        return convolve(x, kernel)

    def loss(first, second, x):
        return jnp.sum(inner(convolve(x, first), second))

    x, first, second = jnp.ones((2, 5, 5, 3)), jnp.ones((3, 3, 3, 4)), jnp.ones((3, 3, 4, 4))
    assert len(profile_jax_step._convolutions(jax.make_jaxpr(loss)(first, second, x).jaxpr)) == 2
    # Backward: the input's gradient of the second convolution, and both kernels' gradients.
    gradients = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(first, second, x).jaxpr
    assert len(profile_jax_step._convolutions(gradients)) == 2 + 3
    rows = profile_jax_step._time_alone(profile_jax_step._convolutions(gradients)[:1], repeats=1)
    assert rows[0][0] > 0 and rows[0][1] == [(2, 5, 5, 3), (3, 3, 3, 4)]


@pytest.mark.parametrize("flags", [["--steps", "0"], ["--repeats", "-1"], ["--worker", "tensorflow"]])
def test_bad_flags_are_one_line_and_exit_status_2(flags, capsys):
    assert profile_jax_step.main(flags) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("profile_jax_step.py: error:") and "\n" not in error
