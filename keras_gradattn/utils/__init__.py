"""Small helpers shared by every part of the package."""

from keras_gradattn.utils.io import atomic_path
from keras_gradattn.utils.io import atomic_write_bytes
from keras_gradattn.utils.io import atomic_write_json
from keras_gradattn.utils.io import atomic_write_text
from keras_gradattn.utils.machine import describe_machine
from keras_gradattn.utils.serialization import register_serializable
from keras_gradattn.utils.training_wrappers import trained_classifier
