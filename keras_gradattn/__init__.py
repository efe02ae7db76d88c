"""GradAttn in Keras 3: attention-routed depth tokens instead of residual shortcuts.

```python
import keras_gradattn
model = keras_gradattn.create_model("gradattn_learned_pe", num_classes=10,
                                    input_shape=(28, 28, 1))
model.compile()
model.fit(images, labels, epochs=10)
```

Importing the package imports neither Keras nor a backend: the public names
load (with the layers and models they need, and nothing else) on first use.
Keras fixes its backend for the life of a process when it is imported, so
this is what lets the command-line programs check their flags and apply
`--backend` before Keras loads; a library never sets `KERAS_BACKEND` itself.

A `.keras` file of these models loads with plain `keras.saving.load_model`,
on any backend, once the models are loaded: after any use of a public name,
or `import keras_gradattn.models`.
"""

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it. Loading any of them loads
# keras_gradattn.models, which registers every serializable class.
_PUBLIC_NAMES = {
    "GradAttnClassifier": "keras_gradattn.models",
    "ImageClassifier": "keras_gradattn.models",
    "ResNetBackbone": "keras_gradattn.models",
    "create_model": "keras_gradattn.models",
    "describe_models": "keras_gradattn.models",
    "list_models": "keras_gradattn.models",
    "register_model": "keras_gradattn.models",
    "AdamL2": "keras_gradattn.optimizers",
    "count_parameters": "keras_gradattn.utils.parameters",
}
_SUBPACKAGES = ("layers", "models", "optimizers")

__all__ = list(_PUBLIC_NAMES)


def __getattr__(name):
    if name in _PUBLIC_NAMES:
        importlib.import_module("keras_gradattn.models")
        value = getattr(importlib.import_module(_PUBLIC_NAMES[name]), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"keras_gradattn.{name}")
    else:
        raise AttributeError(f"module 'keras_gradattn' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBPACKAGES))
