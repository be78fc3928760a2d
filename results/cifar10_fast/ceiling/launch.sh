#!/usr/bin/env bash
# Where is this data's ceiling for SE-ResNet-20? The moonshot's model trained with the paper's full
# CIFAR recipe (`--recipe cifar`: He et al.'s ResNet-20 protocol, 164 epochs, lr 0.1 ÷10 at 50%
# and 75%), on the same JPEG CIFAR-10 as the 20-minute runs. He et al. report 91.25% for ResNet-20
# on the original pixels. Re-running continues from checkpoint.pt; a finished run is left alone.
#   results/cifar10_fast/ceiling/launch.sh            # to the end (~2.7 h alone on 2 cores)
#   CHUNK=20 results/cifar10_fast/ceiling/launch.sh   # at most 20 more epochs this call
# Env: SENET (default: the repository's .venv/bin/senet), DATA (the CIFAR-10 JPEG archive; default
# ../shared/data/cifar10-jpeg.tar.gz beside the repository), THREADS (2).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
SENET="${SENET:-$repo/.venv/bin/senet}"
DATA="${DATA:-$repo/../shared/data/cifar10-jpeg.tar.gz}"
THREADS="${THREADS:-2}"
[ -f "$DATA" ] || { echo "launch.sh: no CIFAR-10 archive at $DATA; set DATA=..." >&2; exit 2; }
dir="$here/cifar_se_resnet20_164ep"
if [ -f "$dir/summary.json" ]; then echo "done: $dir"; exit 0; fi
OMP_NUM_THREADS="$THREADS" "$SENET" train --recipe cifar --model cifar_se_resnet20 --seed 0 \
  --dataset imagefolder --data-dir "$DATA" --threads "$THREADS" --workers 0 \
  --no-tensorboard --progress false --out "$dir" --resume \
  ${CHUNK:+--stop-after-epochs $CHUNK} >>"$here/train.log" 2>&1
