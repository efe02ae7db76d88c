"""GradientNormLogger with a user train_step, depth attention, bad input."""


import keras
import numpy as np
import pytest
from gradflow_testing import NUM_CLASSES
from gradflow_testing import DenseBlock
from gradflow_testing import DepthAttentionModel
from gradflow_testing import assert_norms_close
from gradflow_testing import build_functional_model
from gradflow_testing import group_norms
from gradflow_testing import loss_object
from gradflow_testing import make_data
from gradflow_testing import reference_gradients
from keras import layers
from keras import ops

from keras_gradattn.analysis.event_reader import read_events
from keras_gradattn.callbacks import GradientNormLogger
from keras_gradattn.callbacks.gradient_layout import GradientLayout

BACKEND = keras.backend.backend()


class CustomStepModel(keras.Model):
    """A subclassed model whose own train_step calls the optimizer directly."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = DenseBlock(16, name="block")
        self.head = layers.Dense(NUM_CLASSES, name="head")
        self.loss_fn = loss_object()

    def call(self, inputs, training=None):
        return self.head(self.block(inputs, training=training))

    if BACKEND == "jax":

        def train_step(self, state, data):
            import jax

            trainable, non_trainable, optimizer_variables, metrics_variables = state
            x, y = data

            def loss_of(trainable, non_trainable):
                y_pred, non_trainable = self.stateless_call(trainable, non_trainable, x, training=True)
                return self.loss_fn(y, y_pred), non_trainable

            (loss, non_trainable), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable, non_trainable)
            trainable, optimizer_variables = self.optimizer.stateless_apply(optimizer_variables, grads, trainable)
            return {"loss": loss}, (trainable, non_trainable, optimizer_variables, metrics_variables)

    elif BACKEND == "tensorflow":

        def train_step(self, data):
            import tensorflow as tf

            x, y = data
            with tf.GradientTape() as tape:
                loss = self.loss_fn(y, self(x, training=True))
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            return {"loss": loss}

    else:

        def train_step(self, data):
            import torch

            x, y = data
            self.zero_grad()
            loss = self.loss_fn(y, self(x, training=True))
            loss.backward()
            grads = [v.value.grad for v in self.trainable_variables]
            with torch.no_grad():
                self.optimizer.apply(grads, self.trainable_variables)
            return {"loss": loss}


def test_user_train_step_is_measured(tmp_path):
    keras.utils.set_random_seed(1)
    model = CustomStepModel(name="custom")
    x, y = make_data()
    model(x[:2])
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    layout = GradientLayout.from_model(model)
    expected = group_norms(layout, reference_gradients(model, x, y))

    logger = GradientNormLogger(tmp_path, update_freq=1, reduction="last")
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0, callbacks=[logger])

    # Subclassed models prefix paths with their own name; it is dropped.
    assert set(logger.records[0]["grad_norm"]) == {"block/dense", "block/norm", "head"}
    assert_norms_close(logger.records[0], expected)


class UnbuiltModel(keras.Model):
    """Subclassed, never called before fit: TensorFlow builds it while tracing."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = DenseBlock(16, name="block")
        self.head = layers.Dense(NUM_CLASSES, name="head")

    def call(self, inputs, training=None):
        return self.head(self.block(inputs, training=training))


def test_model_built_during_fit(tmp_path):
    keras.utils.set_random_seed(3)
    model = UnbuiltModel(name="late")
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss_object())
    x, y = make_data()
    logger = GradientNormLogger(tmp_path, update_freq=1, reduction="last")
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0, callbacks=[logger])
    # SGD(0.0) left the weights as they were at the step.
    expected = group_norms(GradientLayout.from_model(model), reference_gradients(model, x, y))
    assert_norms_close(logger.records[0], expected)
    assert (tmp_path / "gradient_norm_layout.json").exists()
    assert not [v.path for v in model.optimizer.variables if "gradient_norm" in v.path]


def expected_received_attention(model, images):
    attention = ops.convert_to_numpy(model.depth_attention(images))
    return attention.mean(axis=(0, 2))


@pytest.mark.parametrize("form", ["array", "tuple", "iterable"])
def test_depth_attention_is_logged_per_epoch(tmp_path, form):
    keras.utils.set_random_seed(2)
    model = DepthAttentionModel(name="depth")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss_object())
    x, y = make_data(32)
    x_val = x[:10]
    attention_batch = {"array": x_val, "tuple": (x_val, y[:10]), "iterable": [(x_val, y[:10]), (x, y)]}[form]
    logger = GradientNormLogger(tmp_path, update_freq="epoch", attention_batch=attention_batch, attention_examples=6)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[logger])

    events = read_events(tmp_path)
    tags = events.scalar_tags("depth_attention/")
    assert len(tags) == DepthAttentionModel.num_layers * DepthAttentionModel.num_tokens
    expected = expected_received_attention(model, x_val[:6])
    # Encoder layers count from 1, as models name them; a model without
    # `tap_names` gets tokens token1, token2, ...
    steps, values = events.scalars["depth_attention/layer2/token3"]
    assert steps.tolist() == [4, 8]
    np.testing.assert_allclose(values[-1], expected[1, 2], rtol=1e-5)
    # Each query's attention sums to one, so the tokens' shares do too.
    last = [events.scalars[f"depth_attention/layer1/token{t}"][1][-1] for t in range(1, 5)]
    np.testing.assert_allclose(sum(last), 1.0, rtol=1e-5)


def test_depth_attention_from_a_tf_dataset(tmp_path):
    tf = pytest.importorskip("tensorflow")
    keras.utils.set_random_seed(2)
    model = DepthAttentionModel(name="depth")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss_object())
    x, y = make_data(16)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(5)
    logger = GradientNormLogger(tmp_path, update_freq="epoch", attention_batch=dataset)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[logger])
    expected = expected_received_attention(model, x[:5])
    np.testing.assert_allclose(logger.epoch_records[-1]["depth_attention"], expected, rtol=1e-5)


def test_depth_attention_without_a_batch_warns_once(tmp_path):
    model = DepthAttentionModel(name="depth")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss_object())
    x, y = make_data(16)
    logger = GradientNormLogger(tmp_path, update_freq="epoch")
    with pytest.warns(UserWarning, match="attention_batch"):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[logger])


@pytest.mark.parametrize("update_freq", [0, -3, 1.5, True, "batch", "steps", None])
def test_bad_update_freq(tmp_path, update_freq):
    with pytest.raises(ValueError) as error:
        GradientNormLogger(tmp_path, update_freq=update_freq)
    message = str(error.value)
    assert "\n" not in message
    assert repr(update_freq) in message and "'epoch'" in message


def test_bad_reduction(tmp_path):
    with pytest.raises(ValueError, match="received 'median'"):
        GradientNormLogger(tmp_path, reduction="median")


def test_model_without_trainable_weights(tmp_path):
    model = build_functional_model()
    model.trainable = False
    model.compile(optimizer="adam", loss=loss_object())
    x, y = make_data(8)
    with pytest.raises(ValueError) as error:
        model.fit(x, y, verbose=0, callbacks=[GradientNormLogger(tmp_path)])
    assert "\n" not in str(error.value)
    assert "'toy' with 0 trainable variables" in str(error.value)


def test_unwritable_log_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    model = build_functional_model()
    model.compile(optimizer="adam", loss=loss_object())
    x, y = make_data(8)
    log_dir = str(blocker / "logs")
    with pytest.raises(ValueError) as error:
        model.fit(x, y, verbose=0, callbacks=[GradientNormLogger(log_dir)])
    assert "\n" not in str(error.value)
    assert repr(log_dir) in str(error.value) and "writable directory" in str(error.value)
    assert "apply" not in vars(model.optimizer)


def test_config_round_trip(tmp_path):
    logger = GradientNormLogger(tmp_path, update_freq="epoch", histograms=True, reduction="max")
    config = keras.saving.serialize_keras_object(logger)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, GradientNormLogger)
    assert restored.get_config() == logger.get_config()
