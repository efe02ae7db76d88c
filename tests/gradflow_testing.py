"""Small models and independent gradient computations shared by the gradflow tests.

The reference gradients here use each backend's own autodiff directly
(tf.GradientTape, jax.grad, torch.autograd), independent of the package's
`keras_gradattn.backend` module and of the optimizer hook under test.
"""

import keras
import numpy as np
from keras import layers
from keras import ops

PACKAGE = "gradflow_tests"
NUM_FEATURES = 12
NUM_CLASSES = 3


@keras.saving.register_keras_serializable(package=PACKAGE)
class DenseBlock(layers.Layer):
    """Dense -> (BatchNorm) -> ReLU, sublayers made in build() with fixed names."""

    def __init__(self, units, batchnorm=True, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.batchnorm = batchnorm

    def build(self, input_shape):
        self.dense = layers.Dense(self.units, name="dense", dtype=self.dtype_policy)
        self.dense.build(input_shape)
        if self.batchnorm:
            self.norm = layers.BatchNormalization(name="norm", dtype=self.dtype_policy)
            self.norm.build((*input_shape[:-1], self.units))

    def call(self, inputs, training=None):
        outputs = self.dense(inputs)
        if self.batchnorm:
            outputs = self.norm(outputs, training=training)
        return ops.relu(outputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return dict(super().get_config(), units=self.units, batchnorm=self.batchnorm)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Stage(layers.Layer):
    """Two DenseBlocks: variables get paths like stage2/block1/dense/kernel."""

    def __init__(self, units, batchnorm=True, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.batchnorm = batchnorm

    def build(self, input_shape):
        self.block1 = DenseBlock(self.units, self.batchnorm, name="block1", dtype=self.dtype_policy)
        self.block1.build(input_shape)
        self.block2 = DenseBlock(self.units, self.batchnorm, name="block2", dtype=self.dtype_policy)
        self.block2.build((*input_shape[:-1], self.units))

    def call(self, inputs, training=None):
        return self.block2(self.block1(inputs, training=training), training=training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return dict(super().get_config(), units=self.units, batchnorm=self.batchnorm)


def build_functional_model(dropout=0.0, batchnorm=True, seed=0, name="toy"):
    """stage1, stage2 (nested custom layers), Dropout, Dense head (logits)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((NUM_FEATURES,))
    x = Stage(16, batchnorm, name="stage1")(inputs)
    x = Stage(8, batchnorm, name="stage2")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(NUM_CLASSES, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def make_data(num_examples=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_examples, NUM_FEATURES)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=(num_examples,)).astype("int32")
    return x, y


def loss_object():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def reference_gradients(model, x, y, loss_fn=None, training=True):
    """Gradients of loss_fn(y, model(x)) w.r.t. the trainable variables, by
    the backend's own autodiff over `model.stateless_call` (no state change)."""
    loss_fn = loss_fn or loss_object()
    backend = keras.backend.backend()
    non_trainable = [ops.convert_to_tensor(v) for v in model.non_trainable_variables]
    if backend == "jax":
        import jax

        def loss_of(trainable):
            y_pred, _ = model.stateless_call(trainable, non_trainable, x, training=training)
            return loss_fn(y, y_pred)

        grads = jax.grad(loss_of)([ops.convert_to_tensor(v) for v in model.trainable_variables])
    elif backend == "tensorflow":
        import tensorflow as tf

        trainable = [tf.identity(v.value) for v in model.trainable_variables]
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            y_pred, _ = model.stateless_call(trainable, non_trainable, x, training=training)
            loss = loss_fn(y, y_pred)
        grads = tape.gradient(loss, trainable)
    else:
        import torch

        trainable = [v.value.detach().clone().requires_grad_(True) for v in model.trainable_variables]
        y_pred, _ = model.stateless_call(trainable, non_trainable, ops.convert_to_tensor(x), training=training)
        loss = loss_fn(ops.convert_to_tensor(y), y_pred)
        grads = torch.autograd.grad(loss, trainable)
    return [np.asarray(ops.convert_to_numpy(g), dtype="float64") for g in grads]


def group_norms(layout, gradients):
    """Per-layer, per-stage and global L2 norms of `gradients`, in float64."""
    squared = np.array([np.sum(np.square(g)) for g in gradients])
    per_layer, per_stage, global_norm = layout.split(np.sqrt(squared @ layout.assignment()))
    return per_layer, per_stage, global_norm


def assert_norms_close(record, expected, rtol=1e-5):
    per_layer, per_stage, global_norm = expected
    assert set(record["grad_norm"]) == set(per_layer)
    for layer, value in per_layer.items():
        np.testing.assert_allclose(record["grad_norm"][layer], value, rtol=rtol, err_msg=layer)
    for stage, value in per_stage.items():
        np.testing.assert_allclose(record["grad_norm_stage"][stage], value, rtol=rtol, err_msg=stage)
    np.testing.assert_allclose(record["grad_norm_global"], global_norm, rtol=rtol)


class DepthAttentionModel(keras.Model):
    """Tokens from a Dense projection; depth_attention() returns softmax(QK^T)
    per 'encoder layer' with the shape GradAttn models return."""

    num_tokens = 4
    num_layers = 2

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tokens = layers.Dense(self.num_tokens * 8, name="tokens")
        self.head = layers.Dense(NUM_CLASSES, name="head")

    def call(self, inputs, training=None):
        return self.head(self.tokens(inputs))

    def depth_attention(self, images):
        tokens = ops.reshape(self.tokens(images), (-1, self.num_tokens, 8))
        maps = []
        for layer in range(self.num_layers):
            scores = ops.einsum("bqd,bkd->bqk", tokens, tokens) / (layer + 1.0)
            maps.append(ops.softmax(scores, axis=-1))
        return ops.stack(maps, axis=1)
