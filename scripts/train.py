#!/usr/bin/env python
"""Thin wrapper around `keras_gradattn.cli.train` (the `gradattn-train` command).

    PYTHONPATH=$PWD python scripts/train.py --dataset digits --epochs 5

`--backend` is applied here, before anything imports Keras.
"""

import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")
for index, argument in enumerate(sys.argv[1:], start=1):
    if argument.startswith("--backend="):
        chosen = argument.split("=", 1)[1]
    elif argument == "--backend" and index + 1 < len(sys.argv):
        chosen = sys.argv[index + 1]
    else:
        continue
    if chosen in BACKENDS:  # anything else: the parser reports it
        os.environ["KERAS_BACKEND"] = chosen
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_gradattn.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
