"""Run records: top-k errors, metrics.jsonl/.csv per epoch, TensorBoard, the Fig. 4-style curves."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from senet.utils.io import atomic_write, atomic_write_text

CSV_FIELDS = (
    "epoch",
    "lr",
    "train_loss",
    "train_top1_err",
    "train_top5_err",
    "val_loss",
    "val_top1_err",
    "val_top5_err",
    "images_per_s",
    "epoch_time_s",
    "eval_time_s",
)


@torch.no_grad()
def topk_correct(
    logits: torch.Tensor, target: torch.Tensor, ks: Sequence[int] = (1, 5)
) -> list[torch.Tensor]:
    """How many rows have the target among their top-k logits, per k (k capped at the class count)."""
    kmax = min(max(ks), logits.shape[1])
    pred = logits.topk(kmax, dim=1).indices
    hit = pred.eq(target[:, None])
    return [hit[:, : min(k, kmax)].any(dim=1).sum() for k in ks]


class RunRecorder:
    """Writes the per-epoch history (JSONL + CSV, rewritten atomically) and TensorBoard scalars."""

    def __init__(self, out: Path, enabled: bool, tensorboard: bool) -> None:
        self.out, self.enabled = out, enabled
        self.writer = None
        self.tensorboard_note = ""
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out / "tb"))
            except Exception as err:  # tensorboard is optional
                self.tensorboard_note = f"TensorBoard logging off ({type(err).__name__}: {err})"

    def write(self, history: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        atomic_write_text(
            self.out / "metrics.jsonl",
            "".join(json.dumps(r, sort_keys=True) + "\n" for r in history),
        )
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)
        atomic_write_text(self.out / "metrics.csv", buf.getvalue())
        if self.writer is not None and history:
            rec = history[-1]
            for key in CSV_FIELDS[1:]:
                if rec.get(key) is not None:
                    self.writer.add_scalar(key.replace("_", "/", 1), rec[key], rec["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def plot_curves(history: list[dict[str, Any]], path: Path, title: str = "") -> str | None:
    """Train and validation top-1 error per epoch, as the paper's Fig. 4; None or a note why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "curves.png skipped: matplotlib is not installed (pip install 'senet[plots]')"
    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(
        epochs,
        [r["train_top1_err"] for r in history],
        label="train top-1 error",
        color="tab:blue",
        ls="--",
    )
    val = [(r["epoch"], r["val_top1_err"]) for r in history if r.get("val_top1_err") is not None]
    if val:
        ax.plot(*zip(*val), label="val top-1 error", color="tab:blue")
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return None


def plot_comparison(runs: dict[str, list[dict[str, Any]]], path: Path, title: str = "") -> None:
    """Several runs' train (dashed) and val (solid) top-1 error on one plot (Fig. 4 style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    for i, (name, history) in enumerate(runs.items()):
        color = f"C{i}"
        ep = [r["epoch"] for r in history]
        ax.plot(
            ep,
            [r["train_top1_err"] for r in history],
            ls="--",
            marker="o",
            ms=3,
            color=color,
            label=f"{name} train",
        )
        val = [
            (r["epoch"], r["val_top1_err"]) for r in history if r.get("val_top1_err") is not None
        ]
        if val:
            ax.plot(*zip(*val), marker="o", ms=3, color=color, label=f"{name} val")
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
