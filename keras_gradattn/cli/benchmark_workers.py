"""The per-backend worker subprocess the benchmark commands share: Keras fixes
its backend at import, so each backend is measured in a process of its own."""

import json
import os
import subprocess
import sys

from keras_gradattn.utils.dependencies import with_package_on_path


def run_backend_worker(module, program, argv, backend):
    """Runs `python -m <module> --worker <argv>` under `backend`; returns the
    JSON report on its last stdout line, or None when it failed (its error is
    on stderr, and a line saying so is added)."""
    command = [sys.executable, "-m", module, "--worker", *argv]
    environment = with_package_on_path(dict(os.environ, KERAS_BACKEND=backend))
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    process = subprocess.run(command, env=environment, stdout=subprocess.PIPE, text=True)
    if process.returncode != 0:
        print(f"{program}: the {backend} worker failed (exit code {process.returncode}); its output "
              "is above. Other backends go on.", file=sys.stderr)  # fmt: skip
        return None
    return json.loads(process.stdout.strip().splitlines()[-1])
