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
# data-parallel training as an MPI rank on the GPU (its local rank's device), a tiny model
if command -v mpiexec >/dev/null; then tmp=$(mktemp -d); python -c "import random; r = random.Random(1); w = 'the a cat dog sees likes and old'.split(); open('$tmp/text', 'w').write(''.join(' '.join(r.choice(w) for _ in range(8)) + '\n' for _ in range(300)))" && mpiexec -n 1 python -m rwthlm_py train --train "$tmp/text" --dev "$tmp/text" --backend cupy --batch-size 8 --learning-rate 0.1 --max-epoch 1 "$tmp/tiny-i16-m16" && echo "mpiexec -n 1 training on cupy: ok"; rm -rf "$tmp"; fi
exec python benchmarks/gpu_check.py --json "$report" "$@"
