#!/usr/bin/env bash
# Usage: bash scripts/check_installs.sh [EXTRA...]   (default: jax torch tensorflow-cpu)
# What `pip install "keras-gradattn[EXTRA]"` gives, checked from scratch:
#  1. for each EXTRA, a fresh virtualenv with only `pip install ".[EXTRA]"`
#     runs the README's default command (`gradattn-train`, digits) with
#     TRAIN_ARGS (default: one epoch on 128 training images, one probe batch:
#     the install is under test, not the training; TRAIN_ARGS="--epochs 1"
#     trains on every image), and the run directory must hold metrics.json
#     and the TensorBoard gradient event files;
#  2. the other extras (full TensorFlow and the GPU builds) must resolve:
#     `pip install --dry-run`, which reads package metadata and installs
#     nothing (no gigabytes of CUDA wheels).
# torch is installed first as TORCH_PIN (default torch==2.13.0, the local CPU
# build): an unpinned torch is PyPI's CUDA wheel, gigabytes. tensorflow-cpu
# stands in for tensorflow for the same reason (half the download).
# RESOLVE_ONLY (default "tensorflow-cuda jax-cuda"; the first resolves full TensorFlow too) lists the
# extras of step 2. PYTHON (default python3) makes the virtualenvs; WORK (default a temporary
# folder, removed at the end) holds them.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
read -r -a TRAIN_ARGS <<< "${TRAIN_ARGS:---epochs 1 --max-train-samples 128 --probe-batches 1}"
EXTRAS=("$@")
[ ${#EXTRAS[@]} -gt 0 ] || EXTRAS=(jax torch tensorflow-cpu)
read -r -a RESOLVE_ONLY <<< "${RESOLVE_ONLY:-tensorflow-cuda jax-cuda}"
if [ -z "${WORK:-}" ]; then
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi
PIP_FLAGS=(--quiet --disable-pip-version-check)
# pip's warnings about this machine's local index folders are not ours.
quiet_pip() { "$@" 2> >(grep -v "^WARNING: Location 'file:" >&2); }

# The package, built once (outside the checkout: no build/ left behind).
source_copy="$WORK/source"
mkdir -p "$source_copy"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$source_copy"

failed=()
for extra in "${EXTRAS[@]}"; do
  echo "=== pip install \".[$extra]\" into a fresh virtualenv"
  venv="$WORK/venv-$extra"
  "$PYTHON" -m venv "$venv"
  if [ "$extra" = torch ]; then
    quiet_pip "$venv/bin/pip" install "${PIP_FLAGS[@]}" "$TORCH_PIN"
  fi
  quiet_pip "$venv/bin/pip" install "${PIP_FLAGS[@]}" "$source_copy[$extra]"
  run_root="$WORK/run-$extra"
  mkdir -p "$run_root"
  # The README's default command, shortened; no backend named: the
  # program must find the one installed. Keras keeps its config in KERAS_HOME.
  if ! (cd "$run_root" && env -u KERAS_BACKEND KERAS_HOME="$run_root/keras_home" \
        "$venv/bin/gradattn-train" "${TRAIN_ARGS[@]}" --verbose 2); then
    failed+=("$extra (gradattn-train failed)")
    continue
  fi
  run_dir="$run_root/runs/digits-gradattn_learned_pe-seed42"
  if [ ! -f "$run_dir/metrics.json" ]; then
    failed+=("$extra (no metrics.json)")
  elif ! ls "$run_dir"/logs/gradients/events.out.tfevents.* >/dev/null 2>&1; then
    failed+=("$extra (no gradient event files in logs/gradients)")
  else
    echo "ok: $extra (${SECONDS}s so far): metrics.json and logs/gradients/$(cd "$run_dir/logs/gradients" && ls events.out.tfevents.* | head -1)"
  fi
done

echo "=== the other extras resolve (pip install --dry-run: metadata only)"
resolver="$WORK/venv-resolve"
"$PYTHON" -m venv "$resolver"
for extra in "${RESOLVE_ONLY[@]}"; do
  if quiet_pip "$resolver/bin/pip" install "${PIP_FLAGS[@]}" --dry-run --report "$WORK/$extra.json" "$source_copy[$extra]"; then
    echo "ok (${SECONDS}s so far): .[$extra] resolves: $("$PYTHON" -c '
import json, sys
names = sorted(item["metadata"]["name"] for item in json.load(open(sys.argv[1]))["install"])
print(len(names), "packages, e.g.", ", ".join(n for n in names if n.startswith(("jax", "tensorflow", "nvidia-cudnn"))))
' "$WORK/$extra.json")"
  else
    failed+=("$extra (does not resolve)")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "install checks failed: ${failed[*]}"
  exit 1
fi
echo "install checks passed: ${EXTRAS[*]} (installed and trained); ${RESOLVE_ONLY[*]} (resolved)"
