"""The skip-connection design space at the model level: registered names,
parameter counts against their formulas, combinations with the heads and the
block attentions, the instruments, and bad input."""

import numpy as np
import pytest

import keras_gradattn
from keras_gradattn import create_model
from keras_gradattn.analysis.probe import default_probe_targets
from keras_gradattn.analysis.probe import probe_gradient_flow
from keras_gradattn.callbacks import GradientNormLogger
from keras_gradattn.models.registry import CONNECTION_MODELS
from keras_gradattn.models.resnet_backbone import ResNetBackbone
from testing_utils import SMALL_BACKBONE
from testing_utils import SMALL_ENCODER
from testing_utils import compile_fast
from testing_utils import randomize_weights
from testing_utils import to_numpy

CONNECTION_NAMES = [f"{connection}_resnet18" for connection, _ in CONNECTION_MODELS]
RESNET18_PARAMETERS = 11_191_242  # at 32x32x3, 10 classes


def extra_parameters(connection, widths=(64, 128, 256, 512), blocks=2, stem_width=64,
                     expansion_rate=4):
    """The formulas of docs/design_space.md: parameters beyond ResNet-18's.

    Per block b with input channels c_in and output channels c: ReZero 1;
    LayerScale c; Highway c_in * c + c (1x1 gate with bias); DWA k + 1 for
    the k-th block of a stage; hyper-connections n + n^2 + n; AttnRes 2c
    (query and key scale) and, as its blocks are plain, the identity
    network's projections stay (so its count is ResNet-18's plus 2c).
    """
    total, previous = 0, stem_width
    for width in widths:
        for index in range(blocks):
            c_in = previous if index == 0 else width
            total += {
                "rezero": 1,
                "layerscale": width,
                "highway": c_in * width + width,
                "dwa": index + 2,
                "hyper": 2 * expansion_rate + expansion_rate**2,
                "attnres": 2 * width,
            }[connection]
        previous = width
    return total


MEASURED_EXTRA = {"rezero": 8, "layerscale": 1_920, "highway": 526_208, "dwa": 20,
                  "hyper": 192, "attnres": 3_840}


@pytest.mark.parametrize("connection", sorted(MEASURED_EXTRA))
def test_parameter_counts_follow_the_formulas(connection):
    model = create_model(f"{connection}_resnet18", num_classes=10, input_shape=(32, 32, 3))
    extra = model.count_params() - RESNET18_PARAMETERS
    assert extra == extra_parameters(connection) == MEASURED_EXTRA[connection]


def test_hyper_parameter_count_follows_the_expansion_rate():
    for rate in (1, 2):
        model = create_model("hyper_resnet18", expansion_rate=rate, **SMALL_BACKBONE)
        base = create_model("resnet18", **SMALL_BACKBONE)
        assert model.count_params() - base.count_params() == extra_parameters(
            "hyper", widths=SMALL_BACKBONE["stage_widths"], stem_width=8, expansion_rate=rate
        )


def test_existing_models_keep_their_parameter_counts():
    assert create_model("resnet18").count_params() == RESNET18_PARAMETERS
    assert create_model("plain_resnet18").count_params() == 11_015_626


def test_registry_lists_every_connection():
    names = keras_gradattn.list_models()
    descriptions = keras_gradattn.describe_models()
    for name in CONNECTION_NAMES:
        assert name in names
        assert "ResNet-18" in descriptions[name]


def small(name, **overrides):
    extra = dict(SMALL_ENCODER) if "gradattn" in name else {}
    return create_model(name, num_classes=3, input_shape=(20, 20, 3),
                        **SMALL_BACKBONE, **extra, **overrides)


@pytest.mark.parametrize(
    "name, overrides, connection",
    [
        ("gradattn_learned_pe", {"connection": "rezero"}, "rezero"),
        ("gradattn_learned_pe", {"use_shortcuts": True}, "identity"),
        ("gradattn_nope", {}, "none"),
        ("resnet18", {"connection": "none"}, "none"),
        ("plain_resnet18", {"connection": "dwa"}, "dwa"),
        ("hyper_resnet18", {"use_shortcuts": False}, "none"),
        ("hyper_resnet18", {"connection": "hyper", "use_shortcuts": True}, "hyper"),
        ("se_resnet18", {"connection": "highway"}, "highway"),
        ("cbam_resnet18", {"connection": "attnres"}, "attnres"),
    ],
)
def test_a_connection_override_replaces_the_registered_default(name, overrides, connection):
    model = small(name, **overrides)
    assert model.backbone.connection == connection
    assert model.backbone.use_shortcuts == (connection != "none")
    assert tuple(model(np.zeros((2, 20, 20, 3), "float32")).shape) == (2, 3)


def test_block_attention_combines_with_every_connection():
    for connection in ("rezero", "hyper", "attnres", "dwa"):
        model = small("cbam_resnet18", connection=connection, stage_blocks=(1, 1, 1, 1))
        assert any("cbam" in w.path for w in model.weights)
        assert model.backbone.block_attention == "cbam"


def test_hyper_connections_reproduce_the_residual_network():
    residual = small("resnet18")
    hyper = small("hyper_resnet18", expansion_rate=3)
    randomize_weights(residual, seed=1)
    values = {w.path: to_numpy(w) for w in residual.weights}
    unmatched = []
    for weight in hyper.weights:
        path = weight.path.replace("hyper_resnet18/", "resnet18/")
        if path in values:
            weight.assign(values[path].astype(weight.dtype))
        else:
            unmatched.append(weight.path)
    assert unmatched and all("_hyper/" in path for path in unmatched)
    images = np.random.default_rng(0).random((4, 20, 20, 3), dtype=np.float32)
    for training in (False, True):
        # Random weights blow logits up to ~1e3: float32 rounding, relatively.
        np.testing.assert_allclose(to_numpy(hyper(images, training=training)),
                                   to_numpy(residual(images, training=training)),
                                   rtol=1e-5, atol=1e-4)


def test_older_backbone_configs_with_use_shortcuts_load():
    backbone = ResNetBackbone(connection="none", input_shape=(20, 20, 3), **SMALL_BACKBONE)
    config = backbone.get_config()
    assert config["connection"] == "none" and "use_shortcuts" not in config
    old = {key: value for key, value in config.items()
           if key not in ("connection", "layerscale_epsilon", "expansion_rate")}
    old["use_shortcuts"] = False
    restored = ResNetBackbone.from_config(old)
    assert restored.connection == "none"
    assert [w.path for w in restored.weights] == [w.path for w in backbone.weights]


@pytest.mark.parametrize("name", ["gradattn_learned_pe", *CONNECTION_NAMES])
def test_config_round_trip(name):
    model = small(name, connection="attnres") if name.startswith("gradattn") else small(name)
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert [w.path for w in clone.weights] == [w.path for w in model.weights]


@pytest.mark.parametrize("name", CONNECTION_NAMES)
def test_instruments_see_every_connection(name, tmp_path):
    model = compile_fast(small(name, stage_blocks=(1, 2, 1, 1)))
    rng = np.random.default_rng(0)
    images, labels = rng.random((4, 20, 20, 3), dtype=np.float32), np.arange(4) % 3
    logger = GradientNormLogger(tmp_path, update_freq=1, reduction="last")
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0, callbacks=[logger])
    norms = logger.records[-1]["grad_norm"]
    assert all(np.isfinite(value) for value in norms.values())
    connection = name.split("_")[0]
    learned = {"rezero": "block1", "layerscale": "block1", "highway": "block1/highway_gate",
               "dwa": "block2_dwa", "attnres": "block2_attnres", "hyper": "block2_hyper"}
    assert any(learned[connection] in layer for layer in norms), sorted(norms)

    report = probe_gradient_flow(model, [(images, labels)])
    assert not report.missing_layers
    assert len(report.layers) >= len(default_probe_targets(model))
    assert np.all(np.isfinite(report.mean_norms)) and np.all(report.mean_norms > 0)


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("resnet18", {"connection": "skip"},
         r"Unknown `connection`: 'skip'. Allowed: 'identity', 'none', 'rezero'"),
        ("resnet18", {"connection": "rezero", "use_shortcuts": False},
         r"`use_shortcuts=False` contradicts `connection='rezero'`"),
        ("resnet18", {"expansion_rate": 2},
         r"`expansion_rate` applies only to connection='hyper'; model 'resnet18' has "
         r"connection='identity'"),
        ("rezero_resnet18", {"layerscale_epsilon": 1e-5},
         r"`layerscale_epsilon` applies only to connection='layerscale'"),
        ("hyper_resnet18", {"expansion_rate": 0}, r"must be an integer >= 1. Received: 0"),
        ("layerscale_resnet18", {"layerscale_epsilon": -0.1},
         r"must be a number >= 0. Received: -0.1"),
    ],
)
def test_bad_connection_arguments_are_explained(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        create_model(name, **overrides)


@pytest.mark.parametrize("name", ["hyper_resnet18", "attnres_resnet18"])
def test_fit_with_default_compilation(name):
    # The backend's compiled train step (tf.function/XLA, jax.jit): the
    # streams' split along a batch axis of unknown size, and the per-example
    # softmax over depth, must trace.
    model = small(name, stage_blocks=(1, 2, 1, 1))
    model.compile()
    rng = np.random.default_rng(0)
    images, labels = rng.random((8, 20, 20, 3), dtype=np.float32), np.arange(8) % 3
    losses = model.fit(images, labels, batch_size=4, epochs=3, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
