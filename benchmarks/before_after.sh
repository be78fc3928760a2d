#!/usr/bin/env bash
# The settings suite on the SE code of an earlier commit ("before"), with this checkout's
# benchmark harness, so that before and after are timed the same way. Run from the repository
# root: benchmarks/before_after.sh [REV] [extra senet bench args]. REV defaults to 594d4cc (the
# code issue 12's session started from). Only the SE path is taken from REV: senet/layers/ and
# senet/models/blocks.py; everything else (models, bench) is this checkout's.
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
REV=${1:-594d4cc}
shift || true
TREE=$(mktemp -d)
trap 'rm -rf "$TREE"' EXIT
cp -r src "$TREE/src"
git archive "$REV" src/senet/layers src/senet/models/blocks.py | tar -x -C "$TREE"
mkdir -p benchmarks/results
PYTHONPATH="$TREE/src" "$PYTHON" -m senet bench --suite settings --threads 1 --clock cpu --no-timm \
  --out "benchmarks/results/bench_settings_before_$REV" "$@"
