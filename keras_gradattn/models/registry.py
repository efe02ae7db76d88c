"""One factory for every model of the paper: `create_model(name, ...)`."""

import dataclasses
import inspect

from keras_gradattn.layers.resnet_blocks import resolve_connection
from keras_gradattn.models.classifiers import GradAttnClassifier
from keras_gradattn.models.classifiers import ImageClassifier
from keras_gradattn.models.resnet_backbone import ResNetBackbone

# Arguments that `create_model` forwards to the backbone; the rest go to the
# classifier.
BACKBONE_ARGUMENTS = (
    "stage_blocks",
    "stage_widths",
    "stem",
    "stem_width",
    "use_shortcuts",
    "block_attention",
    "attention_reduction",
    "connection",
    "layerscale_epsilon",
    "expansion_rate",
)
# Hyper-parameters that only mean something with one connection.
CONNECTION_OPTIONS = {"layerscale_epsilon": "layerscale", "expansion_rate": "hyper"}
GRADATTN_ARGUMENTS = tuple(
    name
    for name in inspect.signature(GradAttnClassifier.__init__).parameters
    if name not in ("self", "backbone", "num_classes", "dtype", "kwargs")
)

RESNET18_BLOCKS = (2, 2, 2, 2)
RESNET34_BLOCKS = (3, 4, 6, 3)
# The learned alternatives to the residual sum, each a registered ResNet-18.
CONNECTION_MODELS = (
    ("rezero", "ReZero (x + alpha F(x), alpha = 0 at start)"),
    ("layerscale", "LayerScale (x + gamma F(x), per-channel gamma = 1e-6 at start)"),
    ("highway", "Highway gates (T F(x) + (1 - T) x, gate bias -2)"),
    ("dwa", "DenseFormer depth-weighted averages within each stage"),
    ("attnres", "Attention Residuals (softmax over earlier block outputs per example)"),
    ("hyper", "static hyper-connections (4 streams per stage)"),
)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    classifier: type
    defaults: dict

    @property
    def allowed_overrides(self):
        head = GRADATTN_ARGUMENTS if self.classifier is GradAttnClassifier else ()
        return BACKBONE_ARGUMENTS + head + ("dtype",)


_REGISTRY = {}


def register_model(name, description, classifier, **defaults):
    """Adds a named variant: a classifier class plus default arguments for it
    and its backbone. Later `create_model` overrides win over `defaults`."""
    if name in _REGISTRY:
        raise ValueError(f"A model named {name!r} is already registered.")
    _REGISTRY[name] = ModelEntry(name, description, classifier, dict(defaults))
    return _REGISTRY[name]


def list_models():
    """Names accepted by `create_model`, sorted."""
    return sorted(_REGISTRY)


def describe_models():
    """`{name: one-line description}` for every registered model."""
    return {name: _REGISTRY[name].description for name in list_models()}


def get_model_entry(name):
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown model {name!r}. Available: {', '.join(list_models())}."
        )
    return _REGISTRY[name]


def create_model(name, num_classes=10, input_shape=(32, 32, 3), **overrides):
    """Builds a registered model, uncompiled, returning logits.

    Args:
        name: one of `list_models()`, e.g. `"resnet18"`, `"gradattn_rope"`.
        num_classes: number of classes (>= 2).
        input_shape: `(height, width, channels)`, channels last.
        **overrides: backbone arguments (`stem`, `stage_blocks`,
            `stage_widths`, `stem_width`, `connection`, `use_shortcuts`,
            `block_attention`, `attention_reduction`, `layerscale_epsilon`,
            `expansion_rate`), GradAttn arguments (`taps`, `token_dim`,
            `num_heads`, `intermediate_dim`, `num_layers`, `dropout`,
            `positional_encoding`, `norm_first`) and `dtype`.

    Example:
    ```python
    model = create_model("gradattn_learned_pe", num_classes=10,
                         input_shape=(28, 28, 1), stem="cifar", num_layers=2)
    model.compile()   # the paper's Adam + coupled L2, cross-entropy, accuracy
    ```
    """
    entry = get_model_entry(name)
    unknown = sorted(set(overrides) - set(entry.allowed_overrides))
    if unknown:
        raise ValueError(
            f"Unknown argument(s) for model {name!r}: {', '.join(unknown)}. "
            f"Allowed: {', '.join(entry.allowed_overrides)}."
        )
    defaults = dict(entry.defaults)
    # `connection` and the older `use_shortcuts` name the same choice: an
    # override of either replaces the registered default of both.
    if "connection" in overrides or "use_shortcuts" in overrides:
        defaults.pop("connection", None)
        defaults.pop("use_shortcuts", None)
    arguments = {**defaults, **overrides}
    connection = resolve_connection(
        arguments.get("use_shortcuts"), arguments.get("connection")
    )
    for option, needed in CONNECTION_OPTIONS.items():
        if option in arguments and connection != needed:
            raise ValueError(
                f"`{option}` applies only to connection={needed!r}; model "
                f"{name!r} has connection={connection!r}. Pass "
                f"connection={needed!r} too, or drop `{option}`."
            )
    dtype = arguments.pop("dtype", None)
    backbone_arguments = {
        key: arguments.pop(key) for key in BACKBONE_ARGUMENTS if key in arguments
    }
    backbone = ResNetBackbone(
        input_shape=input_shape, dtype=dtype, name="backbone", **backbone_arguments
    )
    return entry.classifier(
        backbone, num_classes, dtype=dtype, name=name, **arguments
    )


def _register_defaults():
    for depth, blocks in (("18", RESNET18_BLOCKS), ("34", RESNET34_BLOCKS)):
        register_model(
            f"resnet{depth}",
            f"ResNet-{depth} baseline: identity shortcuts, average pool, Dense.",
            ImageClassifier,
            stage_blocks=blocks,
            use_shortcuts=True,
        )
    register_model(
        "plain_resnet18",
        "ResNet-18 without shortcuts and without attention (ablation).",
        ImageClassifier,
        stage_blocks=RESNET18_BLOCKS,
        use_shortcuts=False,
    )
    for attention, label in (("se", "Squeeze-and-Excitation"), ("cbam", "CBAM")):
        register_model(
            f"{attention}_resnet18",
            f"ResNet-18 with {label} (reduction 16) in every block.",
            ImageClassifier,
            stage_blocks=RESNET18_BLOCKS,
            use_shortcuts=True,
            block_attention=attention,
        )
    for connection, label in CONNECTION_MODELS:
        register_model(
            f"{connection}_resnet18",
            f"ResNet-18 with {label} in place of the residual sum "
            "(docs/design_space.md).",
            ImageClassifier,
            stage_blocks=RESNET18_BLOCKS,
            connection=connection,
        )
    for connection, label in CONNECTION_MODELS:
        # GradAttn keeps its depth-token head and learned positional encoding;
        # the blocks between the taps get the learned connection.
        register_model(
            f"{connection}_gradattn",
            f"GradAttn (learned PE) on a ResNet-18 with {label} in every block "
            "(docs/design_space.md).",
            GradAttnClassifier,
            stage_blocks=RESNET18_BLOCKS,
            connection=connection,
            positional_encoding="learned",
        )
    for suffix, encoding, label in (
        ("nope", "none", "no positional encoding"),
        ("learned_pe", "learned", "learnable positional encoding"),
        ("rope", "rope", "rotary positional encoding"),
    ):
        register_model(
            f"gradattn_{suffix}",
            f"GradAttn, {label}: shortcut-free ResNet-18, 5 depth tokens, "
            "3-layer post-LN encoder (d=256, 8 heads, FFN 512).",
            GradAttnClassifier,
            stage_blocks=RESNET18_BLOCKS,
            use_shortcuts=False,
            positional_encoding=encoding,
        )


_register_defaults()
