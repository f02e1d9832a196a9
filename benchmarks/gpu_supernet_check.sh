#!/usr/bin/env bash
# GPU check for the `device` tool: CUDA training steps of the acceptance supernet (< 5 minutes).
# Usage (repository root): bash benchmarks/gpu_supernet_check.sh [extra args for gpu_supernet_check.py]
# Writes the JSON result to $OUT/gpu_supernet_check.json when $OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
timeout 290 "$PY" benchmarks/gpu_supernet_check.py --device "${DEVICE:-cuda}" "$@" | tee "${OUT:-/tmp}/gpu_supernet_check.json"
