import math

import keras
from keras import ops

from keras_gradattn.layers.rotary_embedding import RotaryEmbedding
from keras_gradattn.utils import register_serializable


@register_serializable
class MultiHeadSelfAttention(keras.layers.Layer):
    """Multi-head self-attention that can rotate queries and keys (RoPE) and
    return its attention weights.

    Keras' `MultiHeadAttention` offers no hook between the projections and the
    dot product, which is where rotary embeddings act, so GradAttn needs its
    own. Projections are separate `query`, `key`, `value` and `output` Dense
    layers; with biases their parameter count equals PyTorch's fused
    `in_proj` + `out_proj`.

    Args:
        num_heads: number of attention heads; must divide the model width.
        dropout: dropout rate on the attention weights during training.
        use_qkv_bias: whether the query/key/value projections have biases (the
            output projection always has one).
        use_rotary_embedding: rotate queries and keys per head with RoPE,
            position = index along the sequence.
        rotary_max_wavelength: RoPE base.

    Call arguments:
        inputs: `(batch, sequence, dim)`.
        training: enables attention dropout.
        return_attention_scores: also return the softmax weights,
            `(batch, num_heads, sequence, sequence)`, before dropout.
    """

    def __init__(
        self,
        num_heads,
        dropout=0.0,
        use_qkv_bias=True,
        use_rotary_embedding=False,
        rotary_max_wavelength=10000,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(
                f"`num_heads` must be a positive integer. Received: {num_heads}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: {dropout}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.use_qkv_bias = use_qkv_bias
        self.use_rotary_embedding = use_rotary_embedding
        self.rotary_max_wavelength = rotary_max_wavelength

        self.attention_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="attention_dropout"
        )
        self.rotary_embedding = (
            RotaryEmbedding(
                max_wavelength=rotary_max_wavelength,
                dtype=self.dtype_policy,
                name="rotary_embedding",
            )
            if use_rotary_embedding
            else None
        )

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is None or dim % self.num_heads:
            raise ValueError(
                f"The model width ({dim}) must be divisible by `num_heads` "
                f"({self.num_heads})."
            )
        self.head_dim = dim // self.num_heads
        if self.use_rotary_embedding and self.head_dim % 2:
            raise ValueError(
                "RoPE rotates feature pairs, so the head width "
                f"(width {dim} / {self.num_heads} heads = {self.head_dim}) "
                "must be even."
            )

        def dense(name, use_bias):
            return keras.layers.Dense(
                dim, use_bias=use_bias, dtype=self.dtype_policy, name=name
            )

        self.query_dense = dense("query", self.use_qkv_bias)
        self.key_dense = dense("key", self.use_qkv_bias)
        self.value_dense = dense("value", self.use_qkv_bias)
        self.output_dense = dense("attention_output", True)
        for layer in (self.query_dense, self.key_dense, self.value_dense):
            layer.build(input_shape)
        self.output_dense.build(input_shape)

    def _split_heads(self, x):
        # (batch, sequence, dim) -> (batch, sequence, heads, head_dim)
        return ops.reshape(
            x, (-1, ops.shape(x)[1], self.num_heads, self.head_dim)
        )

    def call(self, inputs, training=None, return_attention_scores=False):
        query = self._split_heads(self.query_dense(inputs))
        key = self._split_heads(self.key_dense(inputs))
        value = self._split_heads(self.value_dense(inputs))
        if self.rotary_embedding is not None:
            query = self.rotary_embedding(query)
            key = self.rotary_embedding(key)

        scores = ops.einsum("bqhd,bkhd->bhqk", query, key)
        scores = scores / ops.cast(math.sqrt(self.head_dim), scores.dtype)
        # Softmax in float32: bfloat16 logits lose the small differences that
        # decide where attention goes.
        weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        dropped_weights = self.attention_dropout(
            ops.cast(weights, value.dtype), training=training
        )
        context = ops.einsum("bhqk,bkhd->bqhd", dropped_weights, value)
        context = ops.reshape(
            context, (-1, ops.shape(context)[1], self.num_heads * self.head_dim)
        )
        outputs = self.output_dense(context)
        if return_attention_scores:
            return outputs, weights
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "dropout": self.dropout,
                "use_qkv_bias": self.use_qkv_bias,
                "use_rotary_embedding": self.use_rotary_embedding,
                "rotary_max_wavelength": self.rotary_max_wavelength,
            }
        )
        return config
