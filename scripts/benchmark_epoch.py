#!/usr/bin/env python
"""A whole gradattn-train epoch against the bare training step, per backend.
See `python scripts/benchmark_epoch.py --help`."""

import os
import sys

# Runs from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_gradattn.cli.benchmark_epoch import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
