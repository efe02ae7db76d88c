#!/usr/bin/env python
"""Training images/s and GradAttn/ResNet-18 step-time ratios per backend.
See `python scripts/benchmark_models.py --help`."""

import os
import sys

# Runs from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_gradattn.cli.benchmark_models import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
