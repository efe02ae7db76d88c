#!/usr/bin/env python
"""Thin wrapper around `keras_gradattn.cli.benchmark` (the `gradattn-benchmark` command):
model and input-pipeline throughput per backend. See `python scripts/benchmark.py --help`."""

import os
import sys

# Runs from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_gradattn.cli.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
