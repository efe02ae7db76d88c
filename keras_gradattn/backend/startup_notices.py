"""TensorFlow's start-up notices, filtered from stderr.

TensorFlow's C++ code writes a few lines to file descriptor 2 whenever it is
imported, whatever `TF_CPP_MIN_LOG_LEVEL` says; a one-line error of ours would
sit under them. Keras-free, so the commands can use it before Keras loads.
"""

import contextlib
import os
import re
import sys
import tempfile

# C++ lines TensorFlow writes while it is imported, whatever the log level.
_STARTUP_LINES = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+\s+\d+ (cpu_feature_guard|port)\.cc:\d+\] .*"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.)$"
)


def is_startup_line(line):
    """Whether `line` is one of TensorFlow's known start-up notices."""
    return bool(_STARTUP_LINES.match(line.rstrip("\n")))


@contextlib.contextmanager
def startup_lines_filtered():
    """Captures file descriptor 2 (C++ writes bypass `sys.stderr`) and, on
    exit, writes back every captured line but TensorFlow's start-up notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not is_startup_line(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
