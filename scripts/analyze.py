#!/usr/bin/env python
"""Figures and a report of runs' gradient flow; see --help."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from keras_gradattn.cli.analyze import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
