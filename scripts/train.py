#!/usr/bin/env python
"""Thin wrapper around `keras_gradattn.cli.train` (the `gradattn-train` command).

    python scripts/train.py --dataset digits --epochs 5 --backend jax
"""

import os
import sys

# Runs from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_gradattn.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
