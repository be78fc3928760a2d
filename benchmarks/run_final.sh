#!/usr/bin/env bash
# The benchmark runs whose numbers benchmarks/README.md reports. Run from the repository root.
# 1. one block in isolation; 2. the interleaved suite with glibc's default malloc (as timm and a
# plain script run); 3. the training groups again with --keep-freed-memory (senet train's default).
set -euo pipefail
mkdir -p benchmarks/results
DATA=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
.venv/bin/python benchmarks/block_overhead.py --rounds 7 --out benchmarks/results/block_overhead
.venv/bin/python -m senet bench --suite full --threads 1 --clock cpu \
  --data-dir "$DATA" --groups infer "train b" cifar \
  --out benchmarks/results/bench_full "$@"
.venv/bin/python -m senet bench --suite full --threads 1 --clock cpu --keep-freed-memory \
  --data-dir "$DATA" --groups "train b16" cifar \
  --out benchmarks/results/bench_keep_freed_memory "$@"
