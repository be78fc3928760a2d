#!/usr/bin/env bash
# The benchmark run whose numbers benchmarks/README.md reports. Run from the repository root.
set -euo pipefail
mkdir -p benchmarks/results
.venv/bin/python benchmarks/block_overhead.py --rounds 7 --out benchmarks/results/block_overhead
.venv/bin/python -m senet bench --suite full --threads 1 --clock cpu \
  --data-dir ../shared/data/cifar10-jpeg.tar.gz --groups infer "train b16" cifar \
  --out benchmarks/results/bench_full "$@"
