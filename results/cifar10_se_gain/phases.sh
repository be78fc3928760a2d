#!/usr/bin/env bash
# Every run of issue 13's evidence, in priority order; re-running continues where it stopped
# (finished runs are skipped, unfinished ones resume from their checkpoints).
#   1. grid.txt: ResNet-20 vs SE-ResNet-20, seeds 0-2, and the fp32 twins of ResNet-20 seeds 0-1
#   2. ablation/launch.sh: r / squeeze / gate, one at a time, 2 seeds (`senet ablate`)
#   3. grid_more.txt: seeds 3-4 of the main pair, then ResNet-56 vs SE-ResNet-56, 2 seeds
# CHUNK=N (epochs per run per call) works for phases 1 and 3, as in launch.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/launch.sh"
"$here/ablation/launch.sh"
GRID="$here/grid_more.txt" "$here/launch.sh"
