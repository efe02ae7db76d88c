"""What the markdown reports show as an empty table cell.

The gradient-flow report (analysis/gradient_report.py) and the experiment
tables (experiments/results_markdown.py) both print "-" for a value that is
not there; they share this test so that "not there" means the same in both.
"""

import math


def is_missing(value):
    """True for None, an empty CSV field (`""`) and NaN: the values a table prints as "-"."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))
