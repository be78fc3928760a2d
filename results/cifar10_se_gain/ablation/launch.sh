#!/usr/bin/env bash
# Issue 13's small version of the paper's ablations on SE-ResNet-20 (CIFAR-10 JPEGs, the same
# recipe, length and precision as the main pair): reduction r in {4, 8, 16, 32} (Table 10), squeeze
# avg vs max (Table 11), gate sigmoid vs tanh vs ReLU (Table 12), one option at a time, 2 seeds,
# with `senet ablate` (2 workers share the grid through claims; re-running resumes it).
# The defaults' row (r 16, avg, sigmoid) and the plain baseline reuse the main pair's finished
# seed-0/1 runs (symlinks): the same networks trained the same way.
# se_min_channels=1: SE-ResNet-20's first stage has 16 channels, so r = 32 leaves floor(16/32) = 0
# hidden units under the paper's exact C/r rule; with a floor of 1 it keeps one. It changes
# nothing for r <= 16 (every stage has >= 16 channels).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
SENET="${SENET:-$repo/.venv/bin/senet}"
DATA="${DATA:-$repo/../shared/data/cifar10-jpeg.tar.gz}"
EPOCHS="${EPOCHS:-30}"
for s in 0 1; do
  for pair in "se:cifar_se_resnet20" "baseline:cifar_resnet20"; do
    src="$here/../runs/${pair#*:}/s$s"
    if [ -f "$src/summary.json" ] && [ ! -e "$here/${pair%%:*}__s$s" ]; then
      ln -s "../runs/${pair#*:}/s$s" "$here/${pair%%:*}__s$s"
    fi
  done
done
mkdir -p "$here/logs"
for w in 1 2; do
  OMP_NUM_THREADS=1 nice -n 10 "$SENET" ablate --model cifar_se_resnet20 --recipe cifar --one-at-a-time \
    --vary reduction=4,8,16,32 --vary squeeze=avg,max --vary gate=sigmoid,tanh,relu \
    -o se_min_channels=1 --baseline --seeds 2 --epochs "$EPOCHS" \
    --dataset imagefolder --data-dir "$DATA" --threads 1 --workers 0 \
    --set amp=bf16 --set channels_last=true --set progress=false --set tensorboard=false \
    --out "$here" >>"$here/logs/worker$w.log" 2>&1 &
  sleep 30
done
wait
