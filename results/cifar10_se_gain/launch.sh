#!/usr/bin/env bash
# Start or resume every run of grid.txt with `senet train`, JOBS runs at a time (one torch thread
# each: on 2 cores two 1-thread runs train ~1.3x faster in total than one 2-thread run).
# A finished run (summary.json) is skipped; an unfinished one resumes from its checkpoint.pt.
#   results/cifar10_se_gain/launch.sh              # everything, to the end
#   CHUNK=5 results/cifar10_se_gain/launch.sh      # at most 5 more epochs per run this call
# Env: SENET (the command; default: the repository's .venv/bin/senet), DATA (the CIFAR-10 JPEG
# archive; default ../shared/data/cifar10-jpeg.tar.gz beside the repository), JOBS (2), EPOCHS (30),
# GRID (the run list; default grid.txt beside this script).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
SENET="${SENET:-$repo/.venv/bin/senet}"
DATA="${DATA:-$repo/../shared/data/cifar10-jpeg.tar.gz}"
JOBS="${JOBS:-2}"
EPOCHS="${EPOCHS:-30}"
GRID="${GRID:-$here/grid.txt}"
[ -f "$DATA" ] || { echo "launch.sh: no CIFAR-10 archive at $DATA; set DATA=..." >&2; exit 2; }
mkdir -p "$here/logs"
run_one() {
  local out="$1" model="$2" seed="$3"; shift 3
  local dir="$here/runs/$out"
  if [ -f "$dir/summary.json" ]; then echo "done     $out"; return 0; fi
  echo "training $out"
  local log="$here/logs/${out//\//_}.log"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 nice -n 10 "$SENET" train --recipe cifar --model "$model" --seed "$seed" \
    --dataset imagefolder --data-dir "$DATA" --epochs "$EPOCHS" --threads 1 --workers 0 \
    --no-tensorboard --progress false --out "$dir" --resume \
    ${CHUNK:+--stop-after-epochs $CHUNK} "$@" >>"$log" 2>&1 \
    || echo "FAILED   $out (see $log)"
}
export -f run_one
export here SENET DATA EPOCHS CHUNK
grep -vE '^\s*(#|$)' "$GRID" | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _
