import keras
from keras import ops

from keras_gradattn.utils import register_serializable


@register_serializable
class TapTokenizer(keras.layers.Layer):
    """Turns multi-scale feature maps into one token per depth.

    Each tap `(batch, height_i, width_i, channels_i)` is globally average
    pooled and projected by its own Dense layer to `token_dim`; the tokens are
    stacked in tap order (shallow to deep) into `(batch, num_taps,
    token_dim)`. No class token is added: the classifier averages the tokens.

    Args:
        token_dim: width of every token.

    Call arguments:
        taps: list of `channels_last` feature maps, shallow to deep.

    Example:
    ```python
    taps = [keras.random.normal((2, 8, 8, 64)), keras.random.normal((2, 1, 1, 512))]
    tokens = TapTokenizer(token_dim=256)(taps)  # (2, 2, 256)
    ```
    """

    def __init__(self, token_dim, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(token_dim, int) or token_dim < 1:
            raise ValueError(
                f"`token_dim` must be a positive integer. Received: {token_dim}"
            )
        self.token_dim = token_dim

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not all(
            isinstance(shape, (list, tuple)) and len(shape) == 4
            for shape in input_shape
        ):
            raise ValueError(
                "TapTokenizer expects a list of feature maps of shape "
                f"(batch, height, width, channels). Received: {input_shape}"
            )
        self.pool = keras.layers.GlobalAveragePooling2D(
            dtype=self.dtype_policy, name="pool"
        )
        self.projections = []
        for index, shape in enumerate(input_shape):
            projection = keras.layers.Dense(
                self.token_dim,
                dtype=self.dtype_policy,
                name=f"projection{index + 1}",
            )
            projection.build((shape[0], shape[-1]))
            self.projections.append(projection)

    def call(self, taps):
        tokens = [
            projection(self.pool(tap))
            for projection, tap in zip(self.projections, taps)
        ]
        return ops.stack(tokens, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(input_shape), self.token_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"token_dim": self.token_dim})
        return config
