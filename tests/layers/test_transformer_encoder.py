import numpy as np
import pytest

import numpy_reference as ref
from keras_gradattn.layers import DepthTokenEncoder
from keras_gradattn.layers import MultiHeadSelfAttention
from keras_gradattn.layers import TransformerEncoderLayer
from testing_utils import assert_serializable
from testing_utils import encoder_layer_reference_weights
from testing_utils import randomize_weights
from testing_utils import reference_depth_encoder
from testing_utils import to_numpy

DIM, HEADS, FFN = 8, 2, 12


def tokens(seed=0, batch=3, sequence=5):
    return np.random.default_rng(seed).normal(size=(batch, sequence, DIM)).astype("float32")


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("rotary", [False, True], ids=["no_rope", "rope"])
def test_encoder_layer_matches_numpy_reference(norm_first, rotary):
    layer = TransformerEncoderLayer(
        HEADS, FFN, dropout=0.1, norm_first=norm_first,
        use_qkv_bias=not rotary, use_rotary_embedding=rotary, name="layer",
    )
    x = tokens()
    layer(x)
    randomize_weights(layer, seed=1)
    output, scores = layer(x, training=False, return_attention_scores=True)
    expected, expected_scores = ref.encoder_layer(
        x.astype(np.float64), encoder_layer_reference_weights(layer), HEADS,
        norm_first=norm_first, use_rotary=rotary,
    )
    np.testing.assert_allclose(to_numpy(output), expected, atol=1e-4)
    np.testing.assert_allclose(to_numpy(scores), expected_scores, atol=1e-5)


def test_rope_layer_has_no_qkv_biases_and_keeps_parameter_count():
    layer = TransformerEncoderLayer(8, 512, use_qkv_bias=False, use_rotary_embedding=True)
    layer.build((None, 5, 256))
    paths = [w.path for w in layer.weights]
    assert not any(p.endswith(("query/bias", "key/bias", "value/bias")) for p in paths)
    # Reference: 526,336 per RoPE layer, 527,104 with q/k/v biases.
    assert layer.count_params() == 526_336


def test_dropout_is_active_only_in_training():
    layer = TransformerEncoderLayer(HEADS, FFN, dropout=0.5)
    x = tokens(seed=2)
    inference = [to_numpy(layer(x, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    training = to_numpy(layer(x, training=True))
    assert not np.allclose(training, inference[0])


def test_attention_weights_are_a_distribution():
    attention = MultiHeadSelfAttention(num_heads=HEADS)
    _, weights = attention(tokens(), return_attention_scores=True)
    weights = to_numpy(weights)
    assert weights.shape == (3, HEADS, 5, 5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


def test_attention_rejects_indivisible_width():
    with pytest.raises(ValueError, match=r"\(8\) must be divisible by `num_heads` \(3\)"):
        MultiHeadSelfAttention(num_heads=3)(tokens())


def test_rope_rejects_odd_head_width():
    with pytest.raises(ValueError, match="even"):
        MultiHeadSelfAttention(num_heads=8, use_rotary_embedding=True)(tokens())


@pytest.mark.parametrize("encoding", ["none", "learned", "rope"])
def test_depth_encoder_equals_its_layers_in_sequence(encoding):
    encoder = DepthTokenEncoder(
        num_layers=2, num_heads=HEADS, intermediate_dim=FFN,
        positional_encoding=encoding, name="depth_encoder",
    )
    x = tokens(seed=3)
    encoder(x)
    randomize_weights(encoder, seed=4)
    output, attention = encoder(x, return_attention_scores=True)
    # Post-LN, the paper's encoder: no final LayerNorm.
    expected, expected_attention = reference_depth_encoder(encoder, x, final_norm=False)
    np.testing.assert_allclose(to_numpy(output), expected, atol=1e-4)
    assert tuple(attention.shape) == (3, 2, 5, 5)
    np.testing.assert_allclose(to_numpy(attention), expected_attention, atol=1e-5)


@pytest.mark.parametrize("encoding", ["learned", "rope"])
def test_pre_ln_encoder_applies_a_final_layer_norm(encoding):
    # Pre-LN layers leave their residual stream unnormalised; the encoder
    # must end with its own LayerNorm.
    encoder = DepthTokenEncoder(
        num_layers=2, num_heads=HEADS, intermediate_dim=FFN, norm_first=True,
        positional_encoding=encoding, name="depth_encoder",
    )
    x = tokens(seed=6)
    encoder(x)
    randomize_weights(encoder, seed=7)
    output, attention = encoder(x, training=False, return_attention_scores=True)
    expected, expected_attention = reference_depth_encoder(encoder, x, final_norm=True)
    np.testing.assert_allclose(to_numpy(output), expected, atol=1e-4)
    np.testing.assert_allclose(to_numpy(attention), expected_attention, atol=1e-5)
    without_final_norm, _ = reference_depth_encoder(encoder, x, final_norm=False)
    assert np.abs(to_numpy(output) - without_final_norm).max() > 0.1


def test_depth_encoder_rope_drops_qkv_biases_by_default():
    encoder = DepthTokenEncoder(num_layers=1, num_heads=2, intermediate_dim=4,
                                positional_encoding="rope")
    encoder.build((None, 5, 8))
    assert not any("query/bias" in w.path for w in encoder.weights)
    with_bias = DepthTokenEncoder(num_layers=1, num_heads=2, intermediate_dim=4,
                                  positional_encoding="rope", use_qkv_bias=True)
    with_bias.build((None, 5, 8))
    assert any("query/bias" in w.path for w in with_bias.weights)


def test_encoder_configs_round_trip():
    assert_serializable(TransformerEncoderLayer(2, 6, dropout=0.2, norm_first=True,
                                                activation="gelu"))
    assert_serializable(MultiHeadSelfAttention(num_heads=4, use_rotary_embedding=True))
    encoder = DepthTokenEncoder(num_layers=2, num_heads=2, intermediate_dim=6,
                                positional_encoding="rope")
    clone = assert_serializable(encoder)
    x = tokens(seed=5)
    encoder(x)
    clone(x)
    clone.set_weights(encoder.get_weights())
    np.testing.assert_allclose(to_numpy(clone(x)), to_numpy(encoder(x)), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"positional_encoding": "sinusoidal"}, "Unknown `positional_encoding`: 'sinusoidal'"),
        ({"num_layers": 0}, "num_layers"),
    ],
)
def test_depth_encoder_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DepthTokenEncoder(**kwargs)
