import keras

from keras_gradattn.utils import register_serializable


@register_serializable
class LearnedPositionalEmbedding(keras.layers.Layer):
    """Adds a trainable embedding per sequence position to its inputs.

    GradAttn's "learnable PE" variant: a `(1, num_tokens, dim)` tensor,
    initialised from N(0, 1) as in the reference, added to the depth tokens
    before the encoder. The number of positions is taken from the input shape
    when the layer is built.

    Args:
        initializer: initializer of the embedding table; `None` means the
            reference's N(0, 1) (Keras' own "random_normal" has stddev 0.05).

    Example:
    ```python
    tokens = keras.random.normal((2, 5, 256))
    tokens = LearnedPositionalEmbedding()(tokens)
    ```
    """

    def __init__(self, initializer=None, **kwargs):
        super().__init__(**kwargs)
        if initializer is None:
            initializer = keras.initializers.RandomNormal(mean=0.0, stddev=1.0)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "LearnedPositionalEmbedding expects inputs of shape "
                "(batch, num_tokens, dim) with known num_tokens and dim. "
                f"Received: {input_shape}"
            )
        self.embedding = self.add_weight(
            name="embedding",
            shape=(1, input_shape[1], input_shape[2]),
            initializer=self.initializer,
        )

    def call(self, inputs):
        return inputs + keras.ops.cast(self.embedding, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"initializer": keras.initializers.serialize(self.initializer)}
        )
        return config
