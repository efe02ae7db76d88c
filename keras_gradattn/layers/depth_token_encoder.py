import keras
from keras import ops

from keras_gradattn.layers.positional_embedding import (
    LearnedPositionalEmbedding,
)
from keras_gradattn.layers.transformer_encoder_layer import (
    TransformerEncoderLayer,
)
from keras_gradattn.utils import register_serializable

POSITIONAL_ENCODINGS = ("none", "learned", "rope")


def validate_positional_encoding(positional_encoding):
    if positional_encoding not in POSITIONAL_ENCODINGS:
        raise ValueError(
            f"Unknown `positional_encoding`: {positional_encoding!r}. "
            f"Allowed: {', '.join(repr(p) for p in POSITIONAL_ENCODINGS)}."
        )


@register_serializable
class DepthTokenEncoder(keras.layers.Layer):
    """The GradAttn attention pathway: a transformer encoder over depth tokens.

    Takes one token per backbone depth, `(batch, num_tokens, dim)`, adds
    positional information (none, a learned table, or rotary embeddings inside
    attention), and runs a stack of `TransformerEncoderLayer`s. Because every
    token has its own path to the output, each stage of a shortcut-free
    backbone receives gradient through attention rather than through fixed
    identity shortcuts.

    Args:
        num_layers: number of encoder layers (3 in the paper).
        num_heads: attention heads (8 in the paper).
        intermediate_dim: feed-forward width (512 in the paper).
        dropout: dropout rate inside the encoder layers (0.1 in the paper).
        positional_encoding: `"none"`, `"learned"` or `"rope"`.
        norm_first: pre-LN layers, followed by a final LayerNorm (the paper's
            encoder is post-LN with no final norm).
        activation: feed-forward activation.
        layer_norm_epsilon: LayerNorm epsilon.
        use_qkv_bias: biases on the query/key/value projections. `None`
            follows the reference: no biases with RoPE, biases otherwise.
        rotary_max_wavelength: RoPE base.

    Call arguments:
        tokens: `(batch, num_tokens, dim)`.
        training: enables dropout.
        return_attention_scores: also return the attention weights of every
            layer averaged over heads, `(batch, num_layers, num_tokens,
            num_tokens)`; row `q` of layer `l` says how much token `q` attends
            to each token in that layer.
    """

    def __init__(
        self,
        num_layers=3,
        num_heads=8,
        intermediate_dim=512,
        dropout=0.1,
        positional_encoding="learned",
        norm_first=False,
        activation="relu",
        layer_norm_epsilon=1e-5,
        use_qkv_bias=None,
        rotary_max_wavelength=10000,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(
                f"`num_layers` must be a positive integer. Received: {num_layers}"
            )
        validate_positional_encoding(positional_encoding)
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.positional_encoding = positional_encoding
        self.norm_first = norm_first
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_qkv_bias = use_qkv_bias
        self.rotary_max_wavelength = rotary_max_wavelength

        uses_rope = positional_encoding == "rope"
        qkv_bias = (not uses_rope) if use_qkv_bias is None else use_qkv_bias
        self.position_embedding = (
            LearnedPositionalEmbedding(
                dtype=self.dtype_policy, name="position_embedding"
            )
            if positional_encoding == "learned"
            else None
        )
        self.encoder_layers = [
            TransformerEncoderLayer(
                num_heads=num_heads,
                intermediate_dim=intermediate_dim,
                dropout=dropout,
                activation=activation,
                norm_first=norm_first,
                layer_norm_epsilon=layer_norm_epsilon,
                use_qkv_bias=qkv_bias,
                use_rotary_embedding=uses_rope,
                rotary_max_wavelength=rotary_max_wavelength,
                dtype=self.dtype_policy,
                name=f"layer{index + 1}",
            )
            for index in range(num_layers)
        ]
        self.final_norm = (
            keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon,
                dtype=self.dtype_policy,
                name="final_norm",
            )
            if norm_first
            else None
        )

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                "DepthTokenEncoder expects tokens of shape "
                f"(batch, num_tokens, dim). Received: {input_shape}"
            )
        dim = input_shape[-1]
        if dim is None or dim % self.num_heads:
            raise ValueError(
                f"The token width ({dim}) must be divisible by `num_heads` "
                f"({self.num_heads})."
            )
        if self.position_embedding is not None:
            self.position_embedding.build(input_shape)
        for layer in self.encoder_layers:
            layer.build(input_shape)
        if self.final_norm is not None:
            self.final_norm.build(input_shape)

    def call(self, tokens, training=None, return_attention_scores=False):
        x = tokens
        if self.position_embedding is not None:
            x = self.position_embedding(x)
        # The head-averaged scores are only for inspection: the training
        # forward pass neither asks for them nor averages and stacks them.
        per_layer_scores = []
        for layer in self.encoder_layers:
            if return_attention_scores:
                x, scores = layer(
                    x, training=training, return_attention_scores=True
                )
                per_layer_scores.append(ops.mean(scores, axis=1))
            else:
                x = layer(x, training=training)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if return_attention_scores:
            return x, ops.stack(per_layer_scores, axis=1)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "positional_encoding": self.positional_encoding,
                "norm_first": self.norm_first,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "use_qkv_bias": self.use_qkv_bias,
                "rotary_max_wavelength": self.rotary_max_wavelength,
            }
        )
        return config
