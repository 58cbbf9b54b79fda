#!/usr/bin/env bash
# One short GPU check: parity + latency / throughput of every GPU path installed here.
# Usage: bench/gpu_check.sh [--compile]   (PYTHON=... to pick the interpreter; results JSON
# go to $OUT/gpu_check.json when $OUT is set, else ./gpu_check.json).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PY" -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
exec timeout 480 "$PY" -m bench.gpu_check --json "${OUT:-.}/gpu_check.json" "$@"
