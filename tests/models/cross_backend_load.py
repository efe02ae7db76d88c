"""Loads `.keras` files saved under another backend and checks their logits.

Run by test_saving.py in a subprocess with KERAS_BACKEND set:
    python cross_backend_load.py DIRECTORY
DIRECTORY holds NAME.keras, NAME.inputs.npy and NAME.logits.npy for each saved
model. Prints one JSON line: {name: max |logits - saved logits|}.
"""

import glob
import json
import os
import sys

import keras
import numpy as np

# Registers the classes: `import keras_gradattn` alone loads nothing, and
# Keras 3.10.0-3.12.0 (checked) import no non-Keras module named in a .keras file.
import keras_gradattn.models  # noqa: F401


def main(directory):
    differences = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.keras"))):
        name = os.path.basename(path)[: -len(".keras")]
        model = keras.saving.load_model(path)
        inputs = np.load(os.path.join(directory, f"{name}.inputs.npy"))
        expected = np.load(os.path.join(directory, f"{name}.logits.npy"))
        logits = keras.ops.convert_to_numpy(model(inputs, training=False))
        differences[name] = float(np.max(np.abs(logits - expected)))
    print(json.dumps({"backend": keras.backend.backend(), "differences": differences}))


if __name__ == "__main__":
    main(sys.argv[1])
