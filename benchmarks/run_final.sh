#!/usr/bin/env bash
# Every benchmark number that benchmarks/README.md and docs/performance.md report, in one command.
# Run from the repository root; PYTHON defaults to .venv/bin/python, DATA to the CIFAR-10 archive.
#   1. one residual block, training step, fp32/bf16 x NCHW/channels_last (block_overhead.py);
#   2. the settings suite: fp32/bf16 x NCHW/channels_last side by side for CIFAR training,
#      224 px training and batch-1 inference (SE vs plain twin, timm, optimize_for_inference);
#      its table is written into benchmarks/README.md; its training groups again with
#      --keep-freed-memory (glibc malloc thresholds raised, as senet train runs);
#   3. issue 7's suite (float32: inference-optimised and compiled cases, batch 32, the
#      data-included CIFAR loop) with glibc's default malloc, and 4. its training groups with
#      --keep-freed-memory (senet train's default). SKIP_ISSUE7=1 leaves 3 and 4 out.
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
DATA=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
mkdir -p benchmarks/results
"$PYTHON" benchmarks/block_overhead.py --rounds 7 --out benchmarks/results/block_overhead
"$PYTHON" -m senet bench --suite settings --threads 1 --clock cpu \
  --out benchmarks/results/bench_settings --update-readme benchmarks/README.md "$@"
"$PYTHON" -m senet bench --suite settings --threads 1 --clock cpu --keep-freed-memory \
  --groups train --out benchmarks/results/bench_settings_keep_freed_memory "$@"
if [ "${SKIP_ISSUE7:-0}" != 1 ]; then
  "$PYTHON" -m senet bench --suite full --threads 1 --clock cpu \
    --data-dir "$DATA" --groups infer "train b" cifar \
    --out benchmarks/results/bench_full "$@"
  "$PYTHON" -m senet bench --suite full --threads 1 --clock cpu --keep-freed-memory \
    --data-dir "$DATA" --groups "train b16" cifar \
    --out benchmarks/results/bench_keep_freed_memory "$@"
fi
