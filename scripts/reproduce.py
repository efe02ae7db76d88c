#!/usr/bin/env python
"""Thin wrapper around `keras_gradattn.cli.reproduce` (the `gradattn-reproduce` command).

    python scripts/reproduce.py --experiment digits_full --datasets digits --dry-run
"""

import os
import sys

# Runs from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_gradattn.cli.reproduce import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
