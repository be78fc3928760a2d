"""Tabulate and plot the training runs in a results folder (Fig. 4 style: error per epoch).

Usage (from the repository root):

    .venv/bin/python results/compare_runs.py results/cifar10_resnet20_vs_se_8ep --title "..."

Every sub-folder (one level, or two for ``seed1/…``) holding a ``metrics.jsonl`` is a run; it is
labelled by its model (and seed, when not 0). Writes ``results.md`` and ``comparison.png`` into
the folder. Works on unfinished runs too: it reports the epochs that exist.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from senet.train.metrics import plot_comparison

PRETTY = {"cifar_resnet20": "ResNet-20", "cifar_se_resnet20": "SE-ResNet-20"}


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _runs(folder: Path) -> list[Path]:
    return sorted({p.parent for p in folder.glob("*/metrics.jsonl")}) + sorted(
        {p.parent for p in folder.glob("*/*/metrics.jsonl")}
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--title", default="CIFAR-10 (JPEG), cifar recipe, CPU")
    args = p.parse_args(argv)
    histories, rows = {}, []
    for run in _runs(args.folder):
        cfg = _read(run / "config.json") or {}
        label = PRETTY.get(cfg.get("model", ""), cfg.get("model", run.name))
        if cfg.get("seed", 0):
            label += f" (seed {cfg['seed']})"
        history = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        histories[label] = history
        for r in history:
            rows.append(
                f"| {label} | {r['epoch']}/{cfg.get('epochs', '?')} | {r['lr']:g} | "
                f"{r['train_loss']:.4f} | {r['train_top1_err']:.2f} | {r['val_loss']:.4f} | "
                f"{r['val_top1_err']:.2f} | {r['val_top5_err']:.2f} | {r['images_per_s']:.0f} | "
                f"{r['epoch_time_s']:.0f} |"
            )
        done = _read(run / "summary.json") is not None
        status = (
            "finished" if done else f"not finished ({len(history)} of {cfg.get('epochs')} epochs)"
        )
        rows.append(f"| {label} | {status} | | | | | | | | |")
    table = [
        "| model | epoch | lr | train loss | train top-1 err % | val loss | val top-1 err % | "
        "val top-5 err % | images/s | epoch s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    (args.folder / "results.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    if any(histories.values()):
        plot_comparison(
            {k: v for k, v in histories.items() if v}, args.folder / "comparison.png", args.title
        )
    print("\n".join(table))


if __name__ == "__main__":
    main()
