"""Helpers shared by the tests."""

import importlib.util
import os

import keras
import numpy as np

import numpy_reference

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Narrow widths keep every model test fast on a 2-core CPU while exercising
# the same code paths as the paper's widths.
SMALL_BACKBONE = {"stage_widths": (8, 16, 16, 32), "stem_width": 8}
SMALL_ENCODER = {"token_dim": 16, "num_heads": 4, "intermediate_dim": 32}



def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def weights_of(layer):
    """{variable path relative to `layer`: numpy value}."""
    prefix = layer.path + "/"
    return {
        w.path[len(prefix) :] if w.path.startswith(prefix) else w.path: to_numpy(w)
        for w in layer.weights
    }


# Keras weight paths of a TransformerEncoderLayer under the names
# numpy_reference.encoder_layer uses.
ENCODER_LAYER_WEIGHT_NAMES = {
    "query_kernel": "self_attention/query/kernel",
    "query_bias": "self_attention/query/bias",
    "key_kernel": "self_attention/key/kernel",
    "key_bias": "self_attention/key/bias",
    "value_kernel": "self_attention/value/kernel",
    "value_bias": "self_attention/value/bias",
    "output_kernel": "self_attention/attention_output/kernel",
    "output_bias": "self_attention/attention_output/bias",
    "norm1_gamma": "attention_norm/gamma",
    "norm1_beta": "attention_norm/beta",
    "norm2_gamma": "feedforward_norm/gamma",
    "norm2_beta": "feedforward_norm/beta",
    "ff1_kernel": "feedforward_intermediate/kernel",
    "ff1_bias": "feedforward_intermediate/bias",
    "ff2_kernel": "feedforward_output/kernel",
    "ff2_bias": "feedforward_output/bias",
}


def encoder_layer_reference_weights(layer):
    """An encoder layer's weights as numpy_reference.encoder_layer takes them."""
    w = weights_of(layer)
    return {name: w[path] for name, path in ENCODER_LAYER_WEIGHT_NAMES.items() if path in w}


def reference_depth_encoder(encoder, tokens, final_norm):
    """numpy_reference.depth_encoder with a DepthTokenEncoder's weights, ending
    with the encoder's final LayerNorm if `final_norm`, without any otherwise.
    Returns (output, head-averaged attention per layer)."""
    weights = weights_of(encoder)
    norm = (weights["final_norm/gamma"], weights["final_norm/beta"]) if final_norm else None
    return numpy_reference.depth_encoder(
        np.asarray(tokens, np.float64),
        [encoder_layer_reference_weights(layer) for layer in encoder.encoder_layers],
        encoder.num_heads,
        position_embedding=weights.get("position_embedding/embedding"),
        norm_first=encoder.norm_first,
        use_rotary=encoder.positional_encoding == "rope",
        final_norm=norm,
        epsilon=encoder.layer_norm_epsilon,
    )


def randomize_weights(layer, seed=0, scale=0.5):
    """Replaces every weight by random values (variances stay positive), so
    numerics tests cannot pass on zero or one-valued defaults."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        value = rng.normal(0.0, scale, weight.shape)
        if weight.path.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, weight.shape)
        weight.assign(value.astype(weight.dtype))


def assert_serializable(layer):
    """Config round trip and registration under the package name."""
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    registered = keras.saving.get_registered_name(type(layer))
    assert registered == f"keras_gradattn>{type(layer).__name__}"
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(restored) is type(layer)
    assert restored.get_config() == config
    return clone


def compile_fast(model, **kwargs):
    """`model.compile()` with the paper's defaults, in the execution mode that
    is quickest for tiny test models on this backend: TensorFlow runs eagerly
    (tracing and XLA-compiling costs ~10 s per model, eager steps ~0.5 s); JAX
    keeps jit (its eager mode compiles every op separately). Tests of the
    default compiled path call `model.compile()` directly."""
    if keras.backend.backend() == "tensorflow":
        kwargs.setdefault("run_eagerly", True)
    model.compile(**kwargs)
    return model


def load_script(name):
    """Imports `scripts/<name>.py`, which is not part of any package, as a module."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPOSITORY, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
