#!/usr/bin/env bash
# 256 streams on the cuda backend through clap-rt serve's scheduler, one short run.
# Usage: bench/serve_gpu.sh [--streams 256] [--seconds 20]   (PYTHON=... picks the interpreter;
# results JSON go to $OUT/serve_gpu.json when $OUT is set, else ./serve_gpu.json). Exit 2 without CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
exec timeout 300 "$PY" -m bench.serve_gpu --json "${OUT:-.}/serve_gpu.json" "$@"
