#!/usr/bin/env bash
# The tables and plots of README.md from whatever runs exist (finished runs are compared; unfinished
# ones are listed as running), pasted into README.md between its <!-- report:NAME --> markers.
# Re-run after every chunk of training.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
SENET="${SENET:-$repo/.venv/bin/senet}"
PYTHON="${PYTHON:-$repo/.venv/bin/python}"
cd "$here"
"$SENET" compare runs/cifar_resnet20 runs/cifar_se_resnet20 --baseline "cifar_resnet20 bf16" \
  --out report/resnet20 --title "CIFAR-10 (JPEG), ResNet-20 vs SE-ResNet-20, 30 epochs"
if [ -d runs/fp32 ]; then
  "$SENET" compare runs/fp32/cifar_resnet20 runs/cifar_resnet20 --baseline "cifar_resnet20 fp32" \
    --out report/bf16_vs_fp32 --title "ResNet-20: bf16 autocast vs fp32 training, same seeds"
fi
if [ -d runs/cifar_resnet56 ] && [ -d runs/cifar_se_resnet56 ]; then
  "$SENET" compare runs/cifar_resnet56 runs/cifar_se_resnet56 --baseline "cifar_resnet56 bf16" \
    --out report/resnet56 --title "CIFAR-10 (JPEG), ResNet-56 vs SE-ResNet-56, 30 epochs"
fi
if [ -f ablation/grid.json ]; then
  "$SENET" ablate --model cifar_se_resnet20 --recipe cifar --one-at-a-time \
    --vary reduction=4,8,16,32 --vary squeeze=avg,max --vary gate=sigmoid,tanh,relu \
    -o se_min_channels=1 --baseline --seeds 2 --epochs 30 --dataset imagefolder \
    --set amp=bf16 --set channels_last=true --out ablation --table-only
fi
# paste each report's table into README.md between <!-- report:NAME start --> and <!-- report:NAME end -->
"$PYTHON" - <<'PY'
import re
from pathlib import Path

readme = Path("README.md")
text = readme.read_text()
for name, table in {
    "resnet20": Path("report/resnet20/comparison.md"),
    "bf16_vs_fp32": Path("report/bf16_vs_fp32/comparison.md"),
    "resnet56": Path("report/resnet56/comparison.md"),
    "ablation": Path("ablation/table.md"),
}.items():
    if not table.is_file():
        continue
    start, end = f"<!-- report:{name} start -->", f"<!-- report:{name} end -->"
    body = table.read_text().strip()
    text = re.sub(
        re.escape(start) + ".*?" + re.escape(end),
        lambda _: f"{start}\n{body}\n{end}",
        text,
        flags=re.S,
    )
readme.write_text(text)
PY
