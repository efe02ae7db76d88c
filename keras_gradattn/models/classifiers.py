import keras

from keras_gradattn import backend
from keras_gradattn.layers.depth_token_encoder import DepthTokenEncoder
from keras_gradattn.layers.depth_token_encoder import validate_positional_encoding
from keras_gradattn.layers.tap_tokenizer import TapTokenizer
from keras_gradattn.optimizers import AdamL2
from keras_gradattn.utils import register_serializable


def _validate_num_classes(num_classes):
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"`num_classes` must be an integer >= 2. Received: {num_classes}"
        )


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {value}")


def resolve_taps(taps, available):
    """Maps tap selectors (names, or indices with negatives counting from the
    deepest tap, as timm's `out_indices`) to tap names, in the given order."""
    if taps is None:
        return tuple(available)
    if isinstance(taps, (str, int)):
        taps = [taps]
    names = []
    for tap in taps:
        if isinstance(tap, int) and not isinstance(tap, bool):
            if not -len(available) <= tap < len(available):
                raise ValueError(
                    f"Tap index {tap} is out of range for a backbone with "
                    f"{len(available)} taps {list(available)}; allowed: "
                    f"{-len(available)}..{len(available) - 1}."
                )
            names.append(available[tap])
        elif tap in available:
            names.append(tap)
        else:
            raise ValueError(
                f"Unknown tap {tap!r}. Allowed: indices or names among "
                f"{list(available)}."
            )
    if not names or len(set(names)) != len(names):
        raise ValueError(
            f"`taps` must select distinct taps, at least one. Received: {taps}"
        )
    return tuple(names)


def _serialize_dtype(model):
    return keras.dtype_policies.serialize(model.dtype_policy)


class PaperTraining:
    """`compile()` defaults that follow the paper's protocol, and step
    functions that keep their shapes static: a mixin for every model the
    package trains (before `keras.Model` in the bases)."""

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """Configures training; `"auto"` picks the paper's choices.

        - optimizer: Adam, learning rate 1e-3, coupled L2 1e-4 (`AdamL2`).
        - loss: sparse categorical cross-entropy on logits.
        - metrics: top-1 accuracy, named `"accuracy"`.
        """
        if optimizer == "auto":
            optimizer = AdamL2(learning_rate=1e-3, l2=1e-4)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    # Keras makes each step function (compiled when `jit_compile` is on) in
    # these three methods; ours hand the compiled ones to the backend to keep
    # their shapes static, which torch.compile needs for our convolutions.
    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=force)
        if self.jit_compile:
            self.train_function = backend.with_static_shapes(self.train_function)
        return self.train_function

    def make_test_function(self, force=False):
        if self.test_function is not None and not force:
            return self.test_function
        super().make_test_function(force=force)
        if self.jit_compile:
            self.test_function = backend.with_static_shapes(self.test_function)
        return self.test_function

    def make_predict_function(self, force=False):
        if self.predict_function is not None and not force:
            return self.predict_function
        super().make_predict_function(force=force)
        if self.jit_compile:
            self.predict_function = backend.with_static_shapes(self.predict_function)
        return self.predict_function

    def compile_from_config(self, config):
        # Keras skips (with a warning) re-compiling models that override
        # `compile()` when loading them; ours accepts Keras' own arguments.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)


class Classifier(PaperTraining, keras.Model):
    """Shared behaviour of the image classifiers: a backbone, `num_classes`
    logits, and `compile()` defaults that follow the paper's protocol."""

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(
            config["backbone"]
        )
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

    def get_config(self):
        # The constructor's arguments (keras-hub's habit); subclasses add theirs.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": _serialize_dtype(self),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
        }


@register_serializable
class ImageClassifier(Classifier):
    """A backbone's deepest tap, global average pooled, then a Dense layer:
    the ResNet-18 (and SE-/CBAM-ResNet-18) baseline of the paper.

    Args:
        backbone: a `ResNetBackbone` (any model with `tap_info` and a dict of
            taps as output).
        num_classes: number of classes (>= 2); the model returns logits.
        dtype: dtype policy of the head; defaults to the backbone's.
    """

    def __init__(self, backbone, num_classes, dtype=None, **kwargs):
        _validate_num_classes(num_classes)
        dtype = dtype or backbone.dtype_policy

        # === Layers ===
        pool = keras.layers.GlobalAveragePooling2D(dtype=dtype, name="pool")
        # Logits in float32 under mixed precision: the loss and calibration
        # metrics need the precision.
        head = keras.layers.Dense(num_classes, dtype="float32", name="predictions")

        # === Functional model ===
        images = backbone.input
        features = backbone(images)
        logits = head(pool(features[backbone.tap_info[-1].name]))
        super().__init__(inputs=images, outputs=logits, dtype=dtype, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.num_classes = num_classes



@register_serializable
class GradAttnClassifier(Classifier):
    """GradAttn: depth tokens from a backbone's taps, attended by a
    transformer encoder, averaged, then classified.

    Each selected tap is pooled and projected into one token (`TapTokenizer`);
    the tokens, shallow to deep, go through a `DepthTokenEncoder`; the mean of
    its output tokens feeds a Dense layer. With a shortcut-free backbone
    (`use_shortcuts=False`, the paper) every stage reaches the loss through
    its own attention-weighted path instead of identity shortcuts.

    Args:
        backbone: a `ResNetBackbone`.
        num_classes: number of classes (>= 2); the model returns logits.
        taps: which taps become tokens: names or indices (negative counts from
            the deepest), in token order. `None`: all of them (5 for ResNet-18).
        token_dim: token width (256 in the paper).
        num_heads: attention heads (8); must divide `token_dim`.
        intermediate_dim: encoder feed-forward width (512).
        num_layers: encoder layers (3).
        dropout: encoder dropout (0.1).
        positional_encoding: `"none"`, `"learned"` or `"rope"`.
        norm_first: pre-LN encoder layers instead of the paper's post-LN.
        dtype: dtype policy of the head; defaults to the backbone's.

    Example:
    ```python
    model = keras_gradattn.create_model("gradattn_rope", num_classes=10,
                                        input_shape=(32, 32, 3))
    attention = model.depth_attention(images)  # (batch, 3 layers, 5, 5)
    ```
    """

    def __init__(
        self,
        backbone,
        num_classes,
        taps=None,
        token_dim=256,
        num_heads=8,
        intermediate_dim=512,
        num_layers=3,
        dropout=0.1,
        positional_encoding="learned",
        norm_first=False,
        dtype=None,
        **kwargs,
    ):
        _validate_num_classes(num_classes)
        for name, value in (
            ("token_dim", token_dim),
            ("num_heads", num_heads),
            ("intermediate_dim", intermediate_dim),
            ("num_layers", num_layers),
        ):
            _positive_int(name, value)
        if token_dim % num_heads:
            raise ValueError(
                f"`token_dim` ({token_dim}) must be divisible by `num_heads` "
                f"({num_heads}): each head attends over token_dim / num_heads "
                "features."
            )
        validate_positional_encoding(positional_encoding)
        tap_names = resolve_taps(taps, backbone.tap_names)
        dtype = dtype or backbone.dtype_policy

        # === Layers ===
        tokenizer = TapTokenizer(token_dim, dtype=dtype, name="tap_tokenizer")
        encoder = DepthTokenEncoder(
            num_layers=num_layers,
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            positional_encoding=positional_encoding,
            norm_first=norm_first,
            dtype=dtype,
            name="depth_encoder",
        )
        pool = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="token_pool")
        head = keras.layers.Dense(num_classes, dtype="float32", name="predictions")

        # === Functional model ===
        images = backbone.input
        features = backbone(images)
        tokens = tokenizer([features[name] for name in tap_names])
        tokens = encoder(tokens)
        logits = head(pool(tokens))
        super().__init__(inputs=images, outputs=logits, dtype=dtype, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.tap_tokenizer = tokenizer
        self.depth_encoder = encoder
        self.num_classes = num_classes
        self.taps = None if taps is None else list(
            [taps] if isinstance(taps, (str, int)) else taps
        )
        self.tap_names = tap_names
        self.token_dim = token_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.num_layers = num_layers
        self.dropout = dropout
        self.positional_encoding = positional_encoding
        self.norm_first = norm_first

    def depth_tokens(self, images, training=False):
        """The depth tokens before the encoder, `(batch, num_taps, token_dim)`."""
        features = self.backbone(images, training=training)
        return self.tap_tokenizer([features[name] for name in self.tap_names])

    def depth_attention(self, images, training=False):
        """Attention over depth tokens for a batch, from this model's own
        layers (no second model is built).

        Returns a tensor `(batch, num_layers, num_taps, num_taps)`: for each
        encoder layer, the attention weights averaged over heads; row `q` is
        how much token `q` attends to each depth. `self.tap_names` names the
        depths.
        """
        tokens = self.depth_tokens(images, training=training)
        _, attention = self.depth_encoder(
            tokens, training=training, return_attention_scores=True
        )
        return attention

    def get_config(self):
        config = super().get_config()
        config.update({
            "taps": self.taps,
            "token_dim": self.token_dim,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "positional_encoding": self.positional_encoding,
            "norm_first": self.norm_first,
        })
        return config
