#!/usr/bin/env python
"""One-shot GPU check (plain PyTorch against the backends, a FashionMNIST
epoch per backend, the GPU targets). See `bash scripts/gpu_check.sh --help`."""

import os
import sys

# Runs from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_gradattn.cli.gpu_check import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
