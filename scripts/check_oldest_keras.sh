#!/usr/bin/env bash
# Usage: bash scripts/check_oldest_keras.sh [PYTEST_ARGS...]
# Runs the core tests (layers, models, callbacks; about 3 CPU-minutes) under KERAS_BACKEND=torch
# against the oldest Keras that pyproject.toml declares (keras>=X.Y -> X.Y.0),
# installed with --no-deps into a temporary folder ahead of the venv's own.
# PY (default .venv/bin/python) is the Python whose packages serve the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
oldest=$("$PY" - <<'PY'
import re, tomllib
with open("pyproject.toml", "rb") as file:
    dependencies = tomllib.load(file)["project"]["dependencies"]
floor = next(re.search(r">=\s*([0-9.]+)", d).group(1) for d in dependencies if re.match(r"keras\s*[><=]", d))
print(floor + ".0" * (3 - len(floor.split("."))))
PY
)
target=$(mktemp -d)
trap 'rm -rf "$target"' EXIT
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps --target "$target" "keras==$oldest"
export PYTHONPATH="$target:$PWD" KERAS_BACKEND=${KERAS_BACKEND:-torch}
found=$("$PY" -c "import keras; print(keras.__version__)")
if [ "$found" != "$oldest" ]; then
  echo "check_oldest_keras: expected keras $oldest on the path, found $found" >&2
  exit 1
fi
echo "=== core tests under keras $found, KERAS_BACKEND=$KERAS_BACKEND"
# Loading a saved file under the other backends (subprocesses, minutes) and
# torch.compile (minutes of compilation on a CPU) are left to the full suite.
# A temporary folder of its own, as CI runs this beside scripts/test.sh.
"$PY" -m pytest -q -p no:cacheprovider --basetemp "$target/pytest" tests/layers tests/models tests/callbacks \
  --deselect tests/models/test_saving.py::test_saved_under_this_backend_loads_under_the_others \
  --deselect tests/models/test_compiled_fit.py \
  --deselect "tests/callbacks/test_gradient_norm_logger.py::test_logged_norms_equal_backend_autodiff[True]" "$@"
