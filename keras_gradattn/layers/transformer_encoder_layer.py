import keras

from keras_gradattn.layers.multi_head_self_attention import (
    MultiHeadSelfAttention,
)
from keras_gradattn.utils import register_serializable


@register_serializable
class TransformerEncoderLayer(keras.layers.Layer):
    """One transformer encoder layer, post-LayerNorm by default.

    Post-LN is what the GradAttn reference uses (PyTorch's
    `nn.TransformerEncoderLayer` defaults):

        x = LayerNorm(x + Dropout(SelfAttention(x)))
        x = LayerNorm(x + Dropout(Dense(Dropout(ReLU(Dense(x))))))

    `norm_first=True` gives the pre-LN form, which trains more stably when
    encoders get deep:

        x = x + Dropout(SelfAttention(LayerNorm(x)))
        x = x + Dropout(FeedForward(LayerNorm(x)))

    Dropout sits where PyTorch puts it: on the attention weights, after the
    attention block, after the feed-forward activation and after the
    feed-forward block.

    Args:
        num_heads: attention heads; must divide the input width.
        intermediate_dim: width of the feed-forward hidden layer.
        dropout: rate of every dropout above.
        activation: feed-forward activation.
        norm_first: pre-LN instead of post-LN.
        layer_norm_epsilon: LayerNorm epsilon (PyTorch's default 1e-5).
        use_qkv_bias: biases on the query/key/value projections.
        use_rotary_embedding: RoPE on queries and keys.
        rotary_max_wavelength: RoPE base.

    Call arguments:
        inputs: `(batch, sequence, dim)`.
        training: enables dropout.
        return_attention_scores: also return the attention weights
            `(batch, num_heads, sequence, sequence)`.
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.1,
        activation="relu",
        norm_first=False,
        layer_norm_epsilon=1e-5,
        use_qkv_bias=True,
        use_rotary_embedding=False,
        rotary_max_wavelength=10000,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(intermediate_dim, int) or intermediate_dim < 1:
            raise ValueError(
                "`intermediate_dim` must be a positive integer. "
                f"Received: {intermediate_dim}"
            )
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.activation = keras.activations.get(activation)
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_qkv_bias = use_qkv_bias
        self.use_rotary_embedding = use_rotary_embedding
        self.rotary_max_wavelength = rotary_max_wavelength

        self.self_attention = MultiHeadSelfAttention(
            num_heads=num_heads,
            dropout=dropout,
            use_qkv_bias=use_qkv_bias,
            use_rotary_embedding=use_rotary_embedding,
            rotary_max_wavelength=rotary_max_wavelength,
            dtype=self.dtype_policy,
            name="self_attention",
        )
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="attention_norm",
        )
        self.attention_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="attention_output_dropout"
        )
        self.feedforward_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="feedforward_norm",
        )
        self.feedforward_intermediate = keras.layers.Dense(
            intermediate_dim,
            activation=self.activation,
            dtype=self.dtype_policy,
            name="feedforward_intermediate",
        )
        self.feedforward_intermediate_dropout = keras.layers.Dropout(
            dropout,
            dtype=self.dtype_policy,
            name="feedforward_intermediate_dropout",
        )
        self.feedforward_output_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="feedforward_output_dropout"
        )

    def build(self, input_shape):
        self.self_attention.build(input_shape)
        self.attention_norm.build(input_shape)
        self.feedforward_norm.build(input_shape)
        self.feedforward_intermediate.build(input_shape)
        self.feedforward_output = keras.layers.Dense(
            input_shape[-1],
            dtype=self.dtype_policy,
            name="feedforward_output",
        )
        self.feedforward_output.build(
            tuple(input_shape[:-1]) + (self.intermediate_dim,)
        )

    def _feedforward(self, x, training):
        x = self.feedforward_intermediate(x)
        x = self.feedforward_intermediate_dropout(x, training=training)
        x = self.feedforward_output(x)
        return self.feedforward_output_dropout(x, training=training)

    def call(self, inputs, training=None, return_attention_scores=False):
        x = inputs
        attention_input = self.attention_norm(x) if self.norm_first else x
        attended, attention_scores = self.self_attention(
            attention_input, training=training, return_attention_scores=True
        )
        x = x + self.attention_dropout(attended, training=training)
        if not self.norm_first:
            x = self.attention_norm(x)

        feedforward_input = self.feedforward_norm(x) if self.norm_first else x
        x = x + self._feedforward(feedforward_input, training)
        if not self.norm_first:
            x = self.feedforward_norm(x)

        if return_attention_scores:
            return x, attention_scores
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "norm_first": self.norm_first,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "use_qkv_bias": self.use_qkv_bias,
                "use_rotary_embedding": self.use_rotary_embedding,
                "rotary_max_wavelength": self.rotary_max_wavelength,
            }
        )
        return config
