import keras
from keras import ops

from keras_gradattn.utils import register_serializable


@register_serializable
class AdamL2(keras.optimizers.Adam):
    """Adam with coupled L2 regularisation, as `torch.optim.Adam(weight_decay=...)`.

    The reference trains with PyTorch's Adam and `weight_decay=1e-4`, which
    adds `l2 * w` to every gradient before the Adam moments (unlike AdamW,
    whose decoupled decay shrinks weights outside the adaptive step). Keras'
    `Adam(weight_decay=...)` is the decoupled kind, hence this class. Like the
    reference, it regularises every trainable variable, BatchNorm scales and
    biases included.

    Args:
        learning_rate: as `keras.optimizers.Adam`.
        l2: coefficient added as `l2 * variable` to each gradient.
        **kwargs: any other `keras.optimizers.Adam` argument.
    """

    def __init__(self, learning_rate=1e-3, l2=1e-4, name="adam_l2", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if l2 < 0:
            raise ValueError(f"`l2` must be >= 0. Received: {l2}")
        self.l2 = l2

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = gradient + ops.cast(self.l2, gradient.dtype) * ops.cast(
                variable, gradient.dtype
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update({"l2": self.l2})
        return config
