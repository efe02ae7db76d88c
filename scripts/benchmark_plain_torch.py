#!/usr/bin/env python
"""Training images/s of our models on each backend against plain PyTorch, with
PASS/MISS per target. See `python scripts/benchmark_plain_torch.py --help`."""

import os
import sys

# Runs from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_gradattn.cli.benchmark_plain_torch import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
