#!/usr/bin/env bash
# rwthlm_py on a CUDA GPU, checked and measured in one run (about five minutes): device
# facts, pytest -m gpu, the self-test on cupy, words/s against PyTorch's cuDNN LSTM.
#
#     benchmarks/gpu_check.sh [REPORT.json] [gpu_check.py options]
#
# Runs from the checkout (PYTHONPATH=.), installing nothing; see benchmarks/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
report="${1:-gpu_check.json}"
shift || true
exec python benchmarks/gpu_check.py --json "$report" "$@"
