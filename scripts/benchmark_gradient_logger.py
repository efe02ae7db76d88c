#!/usr/bin/env python
"""Step-time overhead of GradientNormLogger; see --help."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_gradattn.cli.benchmark_gradient_logger import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
