"""Registration of the package's classes with Keras serialization."""

import keras

PACKAGE = "keras_gradattn"


def register_serializable(cls=None, *, name=None):
    """Registers `cls` as `keras_gradattn>ClassName` so `.keras` files load
    without `custom_objects`, on any backend."""
    decorator = keras.saving.register_keras_serializable(
        package=PACKAGE, name=name
    )
    return decorator if cls is None else decorator(cls)
