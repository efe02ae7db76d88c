"""GradientFlowProbe: exact output gradients, no state change, no layer missing."""

import keras
import numpy as np
import pytest
from gradflow_testing import loss_object
from gradflow_testing import make_data
from keras import layers
from keras import ops

from keras_gradattn.analysis import GradientFlowReport
from keras_gradattn.analysis import default_probe_targets
from keras_gradattn.analysis import probe_gradient_flow

BACKEND = keras.backend.backend()


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5,))
    hidden = layers.Dense(7, activation="relu", name="hidden")(inputs)
    logits = layers.Dense(3, name="logits")(hidden)
    return keras.Model(inputs, logits, name="mlp")


def test_dense_output_gradients_match_the_analytic_gradient():
    model = mlp()
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(6, 5)).astype("float32"), rng.integers(0, 3, 6)) for _ in range(2)]
    report = probe_gradient_flow(model, batches, loss=loss_object())

    w1, b1, w2, b2 = (np.asarray(ops.convert_to_numpy(v), dtype="float64") for v in model.weights)
    assert report.layer_names == ["hidden", "logits"]
    for batch_index, (x, y) in enumerate(batches):
        hidden = np.maximum(x @ w1 + b1, 0.0)
        logits = hidden @ w2 + b2
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        grad_logits = (probabilities - np.eye(3)[y]) / len(x)  # mean cross-entropy
        grad_hidden = grad_logits @ w2.T
        for column, g in enumerate([grad_hidden, grad_logits]):
            row = {name: report.per_batch[name][batch_index, column] for name in report.per_batch}
            np.testing.assert_allclose(row["l2_norm"], np.linalg.norm(g), rtol=1e-5)
            np.testing.assert_allclose(row["mean_abs"], np.abs(g).mean(), rtol=1e-5)
            np.testing.assert_allclose(row["std"], g.std(), rtol=1e-5)
            np.testing.assert_allclose(row["max_abs"], np.abs(g).max(), rtol=1e-5)
        np.testing.assert_allclose(
            report.losses[batch_index], -np.log(probabilities[np.arange(len(y)), y]).mean(), rtol=1e-5
        )


def conv_net(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 2))
    x = layers.Conv2D(4, 3, padding="same", name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(6, 3, strides=2, padding="same", name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs, name="convnet")


def backend_gradient_wrt(function, value):
    """d function(value) / d value by the backend's own autodiff."""
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.grad(function)(value))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        value = tf.convert_to_tensor(value)
        with tf.GradientTape() as tape:
            tape.watch(value)
            result = function(value)
        return tape.gradient(result, value).numpy()
    import torch

    value = torch.as_tensor(value).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(function(value), value)
    return grad.cpu().numpy()


def test_conv_output_gradient_matches_a_model_split_at_the_layer():
    model = conv_net()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, 4)
    # Inference mode: dropout off, BatchNorm moving statistics, so the split
    # model below computes exactly what the whole model computes.
    report = probe_gradient_flow(model, [(x, y)], loss=loss_object(), training=False)

    head = keras.Model(model.get_layer("conv2").output, model.output)
    body = keras.Model(model.input, model.get_layer("conv2").output)
    conv2_output = ops.convert_to_numpy(body(x, training=False))
    loss_fn = loss_object()
    expected = backend_gradient_wrt(lambda h: loss_fn(y, head(h, training=False)), conv2_output)

    column = report.layer_names.index("conv2")
    np.testing.assert_allclose(report.per_batch["l2_norm"][0, column], np.linalg.norm(expected), rtol=1e-5)
    np.testing.assert_allclose(report.per_batch["max_abs"][0, column], np.abs(expected).max(), rtol=1e-5)
    assert report.layers[column]["output_shape"] == [4, 4, 4, 6]
    assert report.layers[column]["kind"] == "conv"
    assert report.layer_names == ["stem_conv", "conv2", "head"]


def snapshot(model):
    return [np.array(ops.convert_to_numpy(v)) for v in model.variables]


@pytest.mark.parametrize("training", [False, True])
def test_probe_changes_no_model_state(training):
    model = conv_net()
    model.compile(optimizer="adam", loss=loss_object())
    x = np.random.default_rng(2).normal(loc=3.0, size=(6, 8, 8, 2)).astype("float32")
    y = np.arange(6) % 3
    model.fit(x, y, batch_size=3, epochs=1, verbose=0)  # non-trivial BN statistics and optimizer state
    before = snapshot(model)
    optimizer_before = [np.array(ops.convert_to_numpy(v)) for v in model.optimizer.variables]

    report = probe_gradient_flow(model, [(x, y), (x[:3], y[:3])], training=training)

    assert report.training is training
    after = snapshot(model)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert all(
        np.array_equal(a, np.array(ops.convert_to_numpy(b))) for a, b in zip(optimizer_before, model.optimizer.variables)
    )
    assert not [layer.name for layer in model._flatten_layers() if "call" in vars(layer)]


def test_layers_are_restored_after_an_error():
    model = conv_net()

    def failing_loss(y_true, y_pred):
        raise RuntimeError("loss failed")

    with pytest.raises(RuntimeError, match="loss failed"):
        probe_gradient_flow(model, [make_conv_batch()], loss=failing_loss)
    assert not [layer.name for layer in model._flatten_layers() if "call" in vars(layer)]
    model(make_conv_batch()[0])  # still callable as before


def make_conv_batch(n=2):
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, 8, 8, 2)).astype("float32"), rng.integers(0, 3, n)


class SideBranch(layers.Layer):
    """Calls `side` but drops its output, and never calls `unused`."""

    def build(self, input_shape):
        self.main = layers.Dense(4, name="main")
        self.side = layers.Dense(4, name="side")
        self.unused = layers.Dense(4, name="unused")
        for layer in (self.main, self.side, self.unused):
            layer.build(input_shape)

    def call(self, inputs):
        self.side(inputs)
        return self.main(inputs)


def side_branch_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    x = SideBranch(name="branch")(inputs)
    return keras.Model(inputs, layers.Dense(3, name="head")(x), name="branchy")


def test_a_layer_without_gradient_is_never_silently_dropped():
    model = side_branch_model()
    x, y = np.ones((2, 5), "float32"), np.array([0, 1])
    with pytest.raises(ValueError) as error:
        probe_gradient_flow(model, [(x, y)], loss=loss_object())
    message = str(error.value)
    assert "branch/side" in message and "branch/unused" in message and "allow_missing=True" in message

    report = probe_gradient_flow(model, [(x, y)], loss=loss_object(), allow_missing=True)
    assert report.layer_names == ["branch/main", "head"]
    assert sorted(report.missing_layers) == ["branch/side", "branch/unused"]


def test_every_default_target_is_reported():
    model = conv_net()
    report = probe_gradient_flow(model, [make_conv_batch()], loss=loss_object())
    targets = {layer.path for layer in default_probe_targets(model)}
    assert set(report.layer_names) == targets
    assert report.statistics["num_layers"] == len(targets)


class TinyEncoderLayer(layers.Layer):
    """Post-LN transformer encoder layer over a token sequence."""

    def build(self, input_shape):
        width = input_shape[-1]
        self.attention = layers.MultiHeadAttention(2, width // 2, name="attention")
        self.attention.build(input_shape, input_shape)
        self.norm1 = layers.LayerNormalization(name="norm1")
        self.norm1.build(input_shape)
        self.ffn = layers.Dense(width, activation="relu", name="ffn")
        self.ffn.build(input_shape)
        self.norm2 = layers.LayerNormalization(name="norm2")
        self.norm2.build(input_shape)

    def call(self, tokens):
        tokens = self.norm1(tokens + self.attention(tokens, tokens))
        return self.norm2(tokens + self.ffn(tokens))


def test_encoder_layers_and_their_projections_are_probed():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 8))
    x = TinyEncoderLayer(name="encoder_layer_0")(inputs)
    x = TinyEncoderLayer(name="encoder_layer_1")(x)
    x = layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, layers.Dense(3, name="head")(x))
    x = np.random.default_rng(0).normal(size=(3, 5, 8)).astype("float32")
    report = probe_gradient_flow(model, [(x, np.array([0, 1, 2]))], loss=loss_object())
    kinds = {layer["name"]: layer["kind"] for layer in report.layers}
    assert kinds["encoder_layer_0"] == "encoder" and kinds["encoder_layer_1"] == "encoder"
    assert kinds["encoder_layer_0/ffn"] == "dense"
    assert kinds["encoder_layer_0/attention/query"] == "dense"  # EinsumDense
    # Forward order: the first encoder's sublayers come before the first
    # encoder's own output, which comes before the second encoder's.
    names = report.layer_names
    assert names.index("encoder_layer_0/ffn") < names.index("encoder_layer_0") < names.index("encoder_layer_1/ffn")
    assert names[-1] == "head"


def test_a_layer_called_twice_is_probed_per_call():
    keras.utils.set_random_seed(0)
    shared = layers.Dense(5, name="shared")
    inputs = keras.Input((5,))
    outputs = layers.Dense(3, name="head")(shared(shared(inputs)))
    model = keras.Model(inputs, outputs)
    report = probe_gradient_flow(model, [(np.ones((2, 5), "float32"), np.array([0, 2]))], loss=loss_object())
    assert report.layer_names == ["shared", "shared#1", "head"]


def test_report_round_trips_through_json(tmp_path):
    model = mlp()
    x, y = np.ones((4, 5), "float32"), np.array([0, 1, 2, 0])
    path = tmp_path / "gradient_probe.json"
    report = probe_gradient_flow(model, [(x, y)] * 3, loss=loss_object(), max_batches=2, output_path=path)
    loaded = GradientFlowReport.load(path)
    assert loaded.layer_names == report.layer_names
    assert loaded.per_batch["l2_norm"].shape == (2, 2)
    np.testing.assert_array_equal(loaded.per_batch["std"], report.per_batch["std"])
    assert loaded.statistics == report.statistics


def test_bad_arguments():
    model = mlp()
    with pytest.raises(ValueError, match="no compiled loss"):
        probe_gradient_flow(model, [])
    with pytest.raises(ValueError, match="empty iterable"):
        probe_gradient_flow(model, [], loss=loss_object())
    with pytest.raises(ValueError, match="max_batches must be a positive integer or None; received 0"):
        probe_gradient_flow(model, [], loss=loss_object(), max_batches=0)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        probe_gradient_flow(model, [], loss=loss_object(), layers=["nope"])


def test_layers_can_be_chosen_by_name_or_predicate():
    x, y = make_data(4)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((x.shape[1],))
    model = keras.Model(inputs, layers.Dense(3, name="head")(inputs))
    report = probe_gradient_flow(model, [(x, y)], loss=loss_object(), layers=["head"])
    assert report.layer_names == ["head"]
    report = probe_gradient_flow(model, [(x, y)], loss=loss_object(), layers=lambda layer: layer.name == "head")
    assert report.layer_names == ["head"]
