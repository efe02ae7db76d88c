"""`jit_compile=True` trains: one compiled fit step on every backend (XLA on
JAX and TensorFlow, torch.compile on PyTorch) gives the eager step's loss and
weights."""

import keras
import numpy as np
from testing_utils import to_numpy

from keras_gradattn import create_model

# The fewest layers that still run ResNetStem (7x7 stride-2 conv and max-pool),
# a residual-free stage, the tap tokenizer and one depth-encoder layer:
# torch.compile's time grows with the number of layer calls it traces.
TINY_GRADATTN = {
    "stage_blocks": (1,),
    "stage_widths": (4,),
    "stem_width": 4,
    "token_dim": 8,
    "num_heads": 2,
    "intermediate_dim": 8,
    "num_layers": 1,
    # Dropout draws differ between the compiled and the eager step.
    "dropout": 0.0,
}
INPUT_SHAPE = (16, 16, 1)


def fit_one_step(model, x, y, jit_compile):
    # SGD: a weight difference is the learning rate times a gradient
    # difference; Adam's first step divides by |gradient| and would blow up
    # round-off on near-zero gradients.
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit_compile)
    history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return history.history["loss"][0], [to_numpy(w) for w in model.weights]


def test_compiled_step_equals_eager_step():
    compiled = create_model("gradattn_rope", num_classes=3, input_shape=INPUT_SHAPE, **TINY_GRADATTN)
    eager = create_model("gradattn_rope", num_classes=3, input_shape=INPUT_SHAPE, **TINY_GRADATTN)
    eager.set_weights(compiled.get_weights())
    rng = np.random.default_rng(0)
    x = rng.random((8, *INPUT_SHAPE), dtype=np.float32)
    y = np.arange(8) % 3

    compiled_loss, compiled_weights = fit_one_step(compiled, x, y, jit_compile=True)
    eager_loss, eager_weights = fit_one_step(eager, x, y, jit_compile=False)

    assert compiled.jit_compile and not eager.jit_compile
    # float32 throughout; compilers fuse and reorder sums, which moves the
    # last digits only.
    np.testing.assert_allclose(compiled_loss, eager_loss, rtol=1e-5)
    for compiled_weight, eager_weight, variable in zip(compiled_weights, eager_weights, compiled.weights):
        np.testing.assert_allclose(compiled_weight, eager_weight, rtol=1e-4, atol=1e-5, err_msg=variable.path)
