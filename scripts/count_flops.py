#!/usr/bin/env python
"""FLOPs per image of the paper's models and their ratio to ResNet-18, from XLA's cost model.
See `python scripts/count_flops.py --help`."""

import os
import sys

# Runs from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_gradattn.cli.count_flops import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
