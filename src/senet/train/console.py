"""What ``senet train`` prints: a progress bar (or a line a minute), one status line per epoch."""

from __future__ import annotations

import sys
import time
from typing import Any

import torch

from senet.train.engine import TrainLog

NOTE_EVERY_S = 60.0  # without a progress bar (not a TTY), a progress line on stderr this often


def status_line(rec: dict[str, Any], epochs: int) -> str:
    """``epoch 3/10: lr 0.1 train loss 0.91 err 31.2/4.1% val ... 612 img/s 83.4s``."""
    val = (
        f" val {rec['val_top1_err']:.2f}/{rec['val_top5_err']:.2f}% loss {rec['val_loss']:.4f}"
        if rec.get("val_top1_err") is not None
        else ""
    )
    return (
        f"epoch {rec['epoch']}/{epochs}: lr {rec['lr']:.4g} train loss {rec['train_loss']:.4f} "
        f"err {rec['train_top1_err']:.2f}/{rec['train_top5_err']:.2f}%{val} "
        f"{rec['images_per_s']:.0f} img/s {rec['epoch_time_s']:.1f}s"
    )


class ConsoleLog(TrainLog):
    """Rank 0's output: tqdm bar on a terminal (``progress``), else a note every minute."""

    def __init__(self, enabled: bool = True, progress: bool | None = None) -> None:
        self.enabled = enabled
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.bar: Any = None
        self.last_note = time.perf_counter()

    def epoch_start(self, epoch: int, epochs: int, start_step: int, steps: int) -> None:
        self.last_note = time.perf_counter()
        if self.enabled and self.progress:
            from tqdm import tqdm  # lazy: only with a progress bar

            self.bar = tqdm(
                total=steps, initial=start_step, desc=f"epoch {epoch + 1}/{epochs}", leave=False
            )

    def step(self, epoch: int, step: int, steps: int, sums: torch.Tensor) -> None:
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled and time.perf_counter() - self.last_note > NOTE_EVERY_S:
            self.last_note = time.perf_counter()
            loss, n = sums[0].item(), sums[3].item()
            print(
                f"  epoch {epoch + 1} step {step + 1}/{steps}: loss {loss / max(n, 1):.4f}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def epoch_end(self, record: dict[str, Any], epochs: int) -> None:
        self.close()
        if self.enabled:
            print(status_line(record, epochs), flush=True)

    def message(self, text: str) -> None:
        self.close()
        if self.enabled:
            print(text, file=sys.stderr, flush=True)
