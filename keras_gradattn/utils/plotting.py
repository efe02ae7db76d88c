"""matplotlib for figures written to files, without taking over a notebook's backend."""

import sys


def pyplot():
    """`matplotlib.pyplot`, on the Agg backend unless pyplot is already in use.

    Our figures are only ever saved to PNG files, so no display is needed and
    Agg works on headless machines. But `matplotlib.use("Agg")` after pyplot
    was imported switches the backend of the whole process: in a notebook the
    inline backend would be gone and the notebook's own figures would no
    longer show. So Agg is chosen only when nobody has chosen yet.
    """
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
