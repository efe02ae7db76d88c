import keras
import numpy as np
import pytest

import keras_gradattn
import numpy_reference as ref
from keras_gradattn import create_model
from keras_gradattn import count_parameters
from keras_gradattn.models.classifiers import resolve_taps
from testing_utils import SMALL_BACKBONE
from testing_utils import SMALL_ENCODER
from testing_utils import compile_fast
from testing_utils import randomize_weights
from testing_utils import reference_depth_encoder
from testing_utils import to_numpy
from testing_utils import weights_of

GRADATTN_MODELS = ["gradattn_nope", "gradattn_learned_pe", "gradattn_rope"]

# docs/paper.md#parameter-counts: trainable parameters printed by the
# reference code, (classes, channels) -> {model: count}.
REFERENCE_COUNTS = {
    (10, 3): {"resnet18": 11_181_642, "gradattn_learned_pe": 12_851_274,
              "gradattn_rope": 12_847_690, "gradattn_nope": 12_849_994,
              "se_resnet18": 11_268_682, "cbam_resnet18": 11_269_466},
    (10, 1): {"resnet18": 11_175_370, "gradattn_learned_pe": 12_845_002,
              "gradattn_rope": 12_841_418, "gradattn_nope": 12_843_722},
    (8, 3): {"resnet18": 11_180_616, "gradattn_learned_pe": 12_850_760,
             "gradattn_rope": 12_847_176, "gradattn_nope": 12_849_480},
    (200, 3): {"resnet18": 11_279_112, "gradattn_learned_pe": 12_900_104,
               "gradattn_rope": 12_896_520},
    (2, 3): {"resnet18": 11_177_538, "gradattn_learned_pe": 12_849_218,
             "gradattn_rope": 12_845_634},
    (6, 3): {"resnet18": 11_179_590, "gradattn_learned_pe": 12_850_246,
             "gradattn_rope": 12_846_662},
}
REFERENCE_CASES = [
    (name, classes, channels, count)
    for (classes, channels), counts in REFERENCE_COUNTS.items()
    for name, count in counts.items()
]


@pytest.mark.parametrize(
    "name, num_classes, channels, expected", REFERENCE_CASES,
    ids=[f"{n}-{c}cls-{ch}ch" for n, c, ch, _ in REFERENCE_CASES],
)
def test_default_parameter_counts_equal_the_reference(name, num_classes, channels, expected):
    model = create_model(name, num_classes=num_classes, input_shape=(32, 32, channels))
    assert count_parameters(model) == expected


def test_parameter_breakdown_matches_the_reference():
    model = create_model("gradattn_learned_pe", num_classes=10, input_shape=(32, 32, 3))
    assert count_parameters(model.backbone) == 11_002_688
    assert count_parameters(model.tap_tokenizer) == 263_424
    encoder = model.depth_encoder
    assert count_parameters(encoder.position_embedding) == 1_280
    assert sum(count_parameters(layer) for layer in encoder.encoder_layers) == 1_581_312
    shortcuts = sum(
        np.prod(w.shape) for w in create_model("resnet18").trainable_weights
        if "shortcut" in w.path
    )
    assert shortcuts == 173_824


def small_model(name, num_classes=3, input_shape=(28, 28, 1), **overrides):
    extra = dict(SMALL_ENCODER) if "gradattn" in name else {}
    extra.update(overrides)
    return create_model(name, num_classes=num_classes, input_shape=input_shape,
                        **SMALL_BACKBONE, **extra)


def batch(size=8, shape=(28, 28, 1), num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((size, *shape), dtype=np.float32), np.arange(size) % num_classes


@pytest.mark.parametrize("name", keras_gradattn.list_models())
def test_forward_pass_returns_logits(name):
    model = small_model(name)
    images, _ = batch()
    logits = model(images, training=False)
    assert tuple(logits.shape) == (8, 3)
    assert np.all(np.isfinite(to_numpy(logits)))


@pytest.mark.parametrize("name", keras_gradattn.list_models())
def test_fit_lowers_the_loss(name):
    # One block per stage: every block type, attention module and encoder
    # variant still trains, at half the compile time.
    # Without dropout (GradAttn's encoder): its noise over 4 steps on 8 images can hide the decrease,
    # for instance where LayerScale starts every block near the identity.
    keras.utils.set_random_seed(0)
    no_dropout = {"dropout": 0.0} if "gradattn" in name else {}
    model = compile_fast(small_model(name, stage_blocks=(1, 1, 1, 1), **no_dropout))
    images, labels = batch()
    # Each history entry is the training-mode loss before that step's update.
    losses = model.fit(images, labels, epochs=4, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < losses[0], losses


def test_fit_with_default_compilation():
    # The backend's default compiled train step (tf.function/XLA, jax.jit).
    model = small_model("gradattn_learned_pe", stage_blocks=(1, 1, 1, 1))
    model.compile()
    images, labels = batch()
    losses = model.fit(images, labels, epochs=4, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", GRADATTN_MODELS)
def test_depth_attention_matches_numpy_reference(name):
    model = small_model(name, num_layers=2)
    # Random token projections and encoder weights: defaults (zero biases,
    # unit LayerNorm scales) could hide a swapped or skipped weight.
    randomize_weights(model.tap_tokenizer, seed=1)
    randomize_weights(model.depth_encoder, seed=2)
    images, _ = batch(size=4)
    attention = to_numpy(model.depth_attention(images))

    # The reference starts from the backbone's feature maps at inference and
    # pools, projects and attends in NumPy.
    features = model.backbone(images, training=False)
    projections = weights_of(model.tap_tokenizer)
    tokens = ref.tap_tokens(
        [to_numpy(features[tap]) for tap in RESNET_TAPS],
        [projections[f"projection{i}/kernel"] for i in range(1, 6)],
        [projections[f"projection{i}/bias"] for i in range(1, 6)],
    )
    _, expected = reference_depth_encoder(model.depth_encoder, tokens, final_norm=False)
    assert attention.shape == (4, 2, 5, 5)
    np.testing.assert_allclose(attention, expected, atol=1e-5)
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)


def test_tap_selection_sets_the_number_of_tokens():
    model = small_model("gradattn_learned_pe", taps=[-3, "stage3", -1])
    assert model.tap_names == ("stage2", "stage3", "stage4")
    assert to_numpy(model.depth_attention(batch(size=2)[0])).shape[-1] == 3
    assert to_numpy(model.depth_encoder.position_embedding.embedding).shape[1] == 3


RESNET_TAPS = ("stem", "stage1", "stage2", "stage3", "stage4")


@pytest.mark.parametrize(
    "index, name", [(-5, "stem"), (-1, "stage4"), (0, "stem"), (4, "stage4")]
)
def test_tap_indices_reach_both_ends(index, name):
    # Five taps: indices -5..4, negatives counting from the deepest (timm's out_indices).
    assert resolve_taps([index], RESNET_TAPS) == (name,)
    assert resolve_taps(index, RESNET_TAPS) == (name,)


@pytest.mark.parametrize("index", [-6, 5])
def test_tap_indices_one_past_either_end_are_rejected(index):
    message = rf"Tap index {index} is out of range for a backbone with 5 taps .*; allowed: -5\.\.4\."
    with pytest.raises(ValueError, match=message):
        resolve_taps([index], RESNET_TAPS)


def test_tap_index_boundaries_on_a_resnet18_backbone():
    model = small_model("gradattn_nope", taps=[-5, 4])
    assert model.backbone.tap_names == RESNET_TAPS
    assert model.tap_names == ("stem", "stage4")
    for index in (-6, 5):
        with pytest.raises(ValueError, match=rf"Tap index {index} is out of range"):
            small_model("gradattn_nope", taps=[index])


def test_residuals_kept_is_one_argument_away():
    plain = small_model("gradattn_learned_pe")
    residual = small_model("gradattn_learned_pe", use_shortcuts=True)
    assert not any("shortcut" in w.path for w in plain.weights)
    assert any("shortcut" in w.path for w in residual.weights)


def test_configurable_beyond_the_paper():
    model = small_model("gradattn_rope", stem="cifar", stage_blocks=(3, 4, 6, 3),
                        num_layers=1, dropout=0.0, norm_first=True,
                        token_dim=32, num_heads=2, intermediate_dim=8)
    assert model.backbone.stem == "cifar"
    assert len(model.depth_encoder.encoder_layers) == 1
    assert model.depth_encoder.encoder_layers[0].norm_first
    assert tuple(model(batch(size=1)[0]).shape) == (1, 3)


def test_mixed_bfloat16_forward_pass():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = small_model("gradattn_rope")
    assert model.backbone.get_layer("stem").conv.compute_dtype == "bfloat16"
    images, _ = batch(size=2)
    logits = model(images)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(to_numpy(logits)))
    assert np.all(np.isfinite(to_numpy(model.depth_attention(images))))


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("gradattn_nope", {"num_classes": 1}, r"`num_classes` must be an integer >= 2. Received: 1"),
        ("resnet18", {"num_classes": 2.5}, "num_classes"),
        ("gradattn_rope", {"token_dim": 30, "num_heads": 8},
         r"`token_dim` \(30\) must be divisible by `num_heads` \(8\)"),
        ("gradattn_nope", {"positional_encoding": "alibi"},
         r"Unknown `positional_encoding`: 'alibi'. Allowed: 'none', 'learned', 'rope'"),
        ("gradattn_nope", {"taps": [7]}, "out of range"),
        ("gradattn_nope", {"taps": ["stage9"]}, r"Unknown tap 'stage9'"),
        ("gradattn_nope", {"taps": [0, "stem"]}, "distinct"),
        ("resnet18", {"token_dim": 64}, r"Unknown argument\(s\) for model 'resnet18': token_dim"),
        ("gradattn_rope", {"input_shape": (8, 8, 3)}, "too small"),
        ("gradattn_rope", {"input_shape": (3, 32, 32, 3)}, "rank 4"),
        ("vit_b16", {}, r"Unknown model 'vit_b16'. Available: attnres_gradattn, attnres_resnet18, cbam_resnet18, dwa_gradattn"),
    ],
)
def test_bad_input_is_explained(name, kwargs, message):
    kwargs.setdefault("input_shape", (32, 32, 3))
    with pytest.raises(ValueError, match=message):
        create_model(name, **kwargs)


def test_registry_lists_the_paper_models():
    names = keras_gradattn.list_models()
    for required in ["resnet18", "gradattn_nope", "gradattn_learned_pe", "gradattn_rope",
                     "se_resnet18", "cbam_resnet18"]:
        assert required in names
    assert set(keras_gradattn.describe_models()) == set(names)
    with pytest.raises(ValueError, match="already registered"):
        keras_gradattn.register_model("resnet18", "dup", keras_gradattn.ImageClassifier)
