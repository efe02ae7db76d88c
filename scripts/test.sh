#!/usr/bin/env bash
# Runs the test suite once per Keras backend (TensorFlow, JAX, PyTorch).
# BACKENDS="jax" bash scripts/test.sh -k layers   runs a subset; extra args go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
BACKENDS=${BACKENDS:-"tensorflow jax torch"}
failed=()
for backend in $BACKENDS; do
  echo "=== tests under KERAS_BACKEND=$backend"
  # The slowest tests are listed so that the CI budget stays visible.
  KERAS_BACKEND=$backend "$PY" -m pytest --durations=40 "$@" || failed+=("$backend")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "tests failed under: ${failed[*]}"
  exit 1
fi
echo "tests passed under: $BACKENDS"
