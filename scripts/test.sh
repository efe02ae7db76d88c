#!/usr/bin/env bash
# Runs the test suite once per Keras backend (TensorFlow, JAX, PyTorch).
# BACKENDS="jax" bash scripts/test.sh -k layers   runs a subset; extra args go to pytest.
# Tests marked backend_independent (docs, results, notebooks, CLI parsing, tests
# that start their own backends) run with the first backend only;
# EVERY_TEST_EVERY_BACKEND=1 runs them under each.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
BACKENDS=${BACKENDS:-"tensorflow jax torch"}
failed=()
scope=()
for backend in $BACKENDS; do
  echo "=== tests under KERAS_BACKEND=$backend${scope:+ (${scope[1]})}"
  # The slowest tests are listed so that the CI budget stays visible.
  KERAS_BACKEND=$backend "$PY" -m pytest --durations=40 "${scope[@]}" "$@" || failed+=("$backend")
  if [ "${EVERY_TEST_EVERY_BACKEND:-0}" != 1 ]; then
    scope=(-m "not backend_independent")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "tests failed under: ${failed[*]}"
  exit 1
fi
echo "tests passed under: $BACKENDS"
