"""Tabulate and plot the ResNet-20 vs SE-ResNet-20 runs in this folder (Fig. 4 style).

Usage (from the repository root): .venv/bin/python results/cifar10_resnet20_vs_se/report.py
Reads <run>/metrics.jsonl (and summary.json when the run finished); writes comparison.png and
results.md here. Works on unfinished runs too: it reports the epochs that exist.
"""

from __future__ import annotations

import json
from pathlib import Path

from senet.train.metrics import plot_comparison

HERE = Path(__file__).resolve().parent
RUNS = {
    "ResNet-20": "cifar_resnet20",
    "SE-ResNet-20": "cifar_se_resnet20",
    "ResNet-20 (seed 1)": "seed1/cifar_resnet20",
    "SE-ResNet-20 (seed 1)": "seed1/cifar_se_resnet20",
}


def main() -> None:
    histories, rows = {}, []
    for label, name in RUNS.items():
        run = HERE / name
        if not run.is_dir():
            continue
        metrics = run / "metrics.jsonl"
        history = (
            [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.is_file() else []
        )
        cfg = (
            json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
        )
        summary = (
            json.loads((run / "summary.json").read_text())
            if (run / "summary.json").is_file()
            else None
        )
        histories[label] = history
        for r in history:
            rows.append(
                f"| {label} | {r['epoch']}/{cfg.get('epochs', '?')} | {r['lr']:g} | {r['train_loss']:.4f} | "
                f"{r['train_top1_err']:.2f} | {r['val_loss']:.4f} | {r['val_top1_err']:.2f} | "
                f"{r['val_top5_err']:.2f} | {r['images_per_s']:.0f} | {r['epoch_time_s']:.0f} |"
            )
        status = (
            "finished"
            if summary
            else f"not finished ({len(history)} of {cfg.get('epochs', '?')} epochs)"
        )
        rows.append(f"| {label} | {status} | | | | | | | | |")
    table = [
        "| model | epoch | lr | train loss | train top-1 err % | val loss | val top-1 err % | "
        "val top-5 err % | images/s | epoch s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    (HERE / "results.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    if any(histories.values()):
        plot_comparison(
            {k: v for k, v in histories.items() if v},
            HERE / "comparison.png",
            "CIFAR-10 (JPEG), cifar recipe, 3 epochs, CPU",
        )
    print("\n".join(table))


if __name__ == "__main__":
    main()
