#!/usr/bin/env bash
# Creates .venv with the pinned CPU packages of requirements/ci.txt and installs
# keras_gradattn into it (editable). Quick when nothing changed since last time.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"keras-gradattn needs Python >= 3.10; {sys.executable} is {sys.version.split()[0]}")
PY

wanted=$(cat requirements/ci.txt pyproject.toml | sha256sum | cut -d' ' -f1)
stamp="$VENV/.installed-requirements"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements/ci.txt
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$wanted" > "$stamp"
fi
echo "environment ready: $VENV"
