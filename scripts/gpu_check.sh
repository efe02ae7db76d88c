#!/usr/bin/env bash
# One-shot GPU check: plain PyTorch against our three backends (training
# step, two models, two input shapes, float32 and bfloat16) and a whole
# FashionMNIST epoch per backend on the device data path; writes
# results/benchmarks/gpu_check_<device>.md with PASS/MISS beside the GPU
# targets. About 8 minutes on one GPU; runs on a CPU too (named "cpu").
#   bash scripts/gpu_check.sh [--data-dir DIR] [--quick] [--backends jax,torch] ...
# Uses the project's .venv when there is one (scripts/setup.sh), else python.
set -euo pipefail
cd "$(dirname "$0")/.."
python=python
[ -x .venv/bin/python ] && python=.venv/bin/python
exec "$python" scripts/gpu_check.py "$@"
