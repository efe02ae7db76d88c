"""The plain PyTorch models of plain_torch/ against the package's Keras models.

plain_torch/ is written from docs/architecture.md in torch.nn alone: a Keras
model's weights, read as NumPy and copied in, must give the same logits (eval
mode) and the same trainable parameter count. This checks the Keras
architecture a second time, independently, under every Keras backend (the
plain model always runs in torch), and it checks the speed anchor of
scripts/benchmark_plain_torch.py.
"""

import keras
import numpy as np
import pytest

import keras_gradattn
from testing_utils import randomize_weights

torch = pytest.importorskip("torch")

from plain_torch import create_plain_model  # noqa: E402
from plain_torch import load_keras_weights  # noqa: E402
from plain_torch.models import MODEL_NAMES  # noqa: E402
from plain_torch.models import count_trainable_parameters  # noqa: E402

# Two blocks per stage and three encoder layers, as the paper, at narrow widths
# (head width 4: even, as RoPE needs) so that each case takes about a second.
SMALL_BACKBONE = {"stage_widths": (8, 16, 16, 32), "stem_width": 8}
SMALL_ENCODER = {"token_dim": 16, "num_heads": 4, "intermediate_dim": 32}
INPUT_SHAPE = (28, 28, 1)  # FashionMNIST: the smallest input of the paper, 1-channel stem.


def _sizes(name):
    return SMALL_BACKBONE if name == "resnet18" else {**SMALL_BACKBONE, **SMALL_ENCODER}


def _keras_model(name, num_classes=10):
    keras.utils.set_random_seed(0)
    model = keras_gradattn.create_model(name, num_classes=num_classes, input_shape=INPUT_SHAPE, **_sizes(name))
    # Random values everywhere, BatchNorm statistics included: defaults of
    # zero and one would hide a weight copied to the wrong place.
    randomize_weights(model, scale=0.3)
    return model


def _numpy_weights(model):
    return {weight.path: keras.ops.convert_to_numpy(weight) for weight in model.weights}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_logits_and_parameter_count_as_the_keras_model(name):
    keras_model = _keras_model(name)
    plain_model = create_plain_model(name, num_classes=10, in_channels=INPUT_SHAPE[-1], **_sizes(name))
    load_keras_weights(plain_model, _numpy_weights(keras_model))
    plain_model.eval()

    images = np.random.default_rng(1).standard_normal((2, *INPUT_SHAPE)).astype("float32")
    expected = keras.ops.convert_to_numpy(keras_model(images, training=False))
    with torch.no_grad():
        logits = plain_model(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()

    assert np.abs(expected).max() > 0.1  # logits of a size that atol 1e-4 can tell apart
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
    assert count_trainable_parameters(plain_model) == keras_gradattn.count_parameters(keras_model)


@pytest.mark.parametrize(
    "name, expected",
    [("resnet18", 11_175_370), ("gradattn_nope", 12_843_722), ("gradattn_learned_pe", 12_845_002),
     ("gradattn_rope", 12_841_418)],
)  # fmt: skip
def test_paper_sizes_have_the_reference_parameter_counts(name, expected):
    # docs/architecture.md's counts for 10 classes, 1-channel input, which the
    # Keras models match (tests/models/test_classifiers.py).
    assert count_trainable_parameters(create_plain_model(name, num_classes=10, in_channels=1)) == expected


def test_a_keras_model_of_another_architecture_is_refused():
    # Every tensor must find its Keras weight and every Keras weight its
    # tensor: ResNet-18's shortcut projections have no place in GradAttn.
    plain_model = create_plain_model("gradattn_nope", num_classes=10, in_channels=1, **_sizes("gradattn_nope"))
    with pytest.raises(ValueError, match="no PyTorch counterpart|needs Keras weight"):
        load_keras_weights(plain_model, _numpy_weights(_keras_model("resnet18")))
    with pytest.raises(ValueError, match="shape mismatch"):
        load_keras_weights(plain_model, _numpy_weights(_keras_model("gradattn_nope", num_classes=7)))
