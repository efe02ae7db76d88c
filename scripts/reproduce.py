#!/usr/bin/env python
"""Thin wrapper around `keras_gradattn.cli.reproduce` (the `gradattn-reproduce` command).

    PYTHONPATH=$PWD python scripts/reproduce.py --experiment digits_full --datasets digits --dry-run
"""

import importlib.util
import os
import sys

# Runs from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# This process only plans and tabulates; each run chooses its own backend.
# JAX is the lightest to import and the grid's default backend anyway.
if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("jax"):
    os.environ["KERAS_BACKEND"] = "jax"

from keras_gradattn.cli.reproduce import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
