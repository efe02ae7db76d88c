import keras
from keras import ops

from keras_gradattn.utils import register_serializable


@register_serializable
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (RoPE), rotate-half convention.

    Rotates each feature pair `(x[i], x[i + d/2])` of a query or key vector by
    the angle `position * max_wavelength ** (-2i / d)`, so that the dot product
    of a rotated query and key depends on their relative position only. The
    layer has no weights. In GradAttn the "sequence" is the stack of depth
    tokens, so the position is the depth index 0..T-1.

    Args:
        max_wavelength: the base of the geometric progression of frequencies.
        sequence_axis: axis of the inputs that indexes positions.

    Call arguments:
        inputs: tensor of shape `(batch, sequence, ..., head_dim)`; the last
            axis is rotated and must have even length.
        start_index: position of the first element along `sequence_axis`.

    Example:
    ```python
    queries = keras.random.normal((2, 5, 8, 32))  # (batch, tokens, heads, dim)
    rotated = RotaryEmbedding()(queries)
    ```
    """

    def __init__(self, max_wavelength=10000, sequence_axis=1, **kwargs):
        super().__init__(**kwargs)
        if max_wavelength <= 1:
            raise ValueError(
                f"`max_wavelength` must be > 1. Received: {max_wavelength}"
            )
        self.max_wavelength = max_wavelength
        self.sequence_axis = sequence_axis
        self.built = True

    def call(self, inputs, start_index=0):
        rank = len(inputs.shape)
        sequence_axis = self.sequence_axis % rank
        head_dim = inputs.shape[-1]
        if head_dim is None or head_dim % 2:
            raise ValueError(
                "RotaryEmbedding rotates feature pairs, so the last axis must "
                f"have even length. Received shape: {inputs.shape}"
            )
        sequence_length = ops.shape(inputs)[sequence_axis]
        # Angles in float32 even under mixed precision: bfloat16 cannot hold
        # position * frequency accurately.
        positions = ops.cast(
            ops.arange(sequence_length) + start_index, "float32"
        )
        exponents = ops.arange(0, head_dim, 2, dtype="float32") / head_dim
        inverse_frequencies = ops.power(
            ops.cast(self.max_wavelength, "float32"), -exponents
        )
        angles = ops.einsum("s,f->sf", positions, inverse_frequencies)
        angles = ops.concatenate([angles, angles], axis=-1)
        # Broadcast (sequence, head_dim) against the inputs' layout.
        broadcast_shape = [1] * rank
        broadcast_shape[sequence_axis] = sequence_length
        broadcast_shape[-1] = head_dim
        cos = ops.cast(ops.reshape(ops.cos(angles), broadcast_shape), inputs.dtype)
        sin = ops.cast(ops.reshape(ops.sin(angles), broadcast_shape), inputs.dtype)
        first_half, second_half = ops.split(inputs, 2, axis=-1)
        rotated_half = ops.concatenate([-second_half, first_half], axis=-1)
        return inputs * cos + rotated_half * sin

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_wavelength": self.max_wavelength,
                "sequence_axis": self.sequence_axis,
            }
        )
        return config
