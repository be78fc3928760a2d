"""Learning-rate schedules of the paper (step, multistep, plateau) and modern ones (cosine, warm-up).

The rate is a pure function of (epoch, step) plus, for ``plateau``, a small state saved in the
checkpoint, so a resumed run uses exactly the rates of an uninterrupted one. Schedules that depend
on the run's length (multistep fractions, cosine) span ``config.schedule_span`` epochs
(``schedule_epochs``, else ``epochs``): an extended run keeps its original span, so the epochs it
trained keep their rates and the added ones continue the schedule's formula past its end
(multistep and step: the last milestone's rate, resp. the next ÷gamma steps; plateau: as before).
"""

from __future__ import annotations

import math
from typing import Any

from senet.train.recipes import TrainConfig


class LRSchedule:
    """``lr(epoch, step)`` for a ``TrainConfig`` with ``steps_per_epoch`` optimizer steps an epoch."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int) -> None:
        self.cfg, self.steps = config, max(1, steps_per_epoch)
        self.peak = config.effective_lr
        self.milestones = config.milestone_epochs
        # plateau state (ReduceLROnPlateau semantics, mode "min", relative threshold 1e-4)
        self.plateau_factor, self.best, self.bad_epochs = 1.0, math.inf, 0

    def lr(self, epoch: int, step: int) -> float:
        cfg = self.cfg
        it = epoch * self.steps + step
        if (
            it < cfg.constant_warmup_iters
        ):  # ResNet paper: lr 0.01 until training error < 80% (~400 it)
            return cfg.constant_warmup_lr
        t = epoch + step / self.steps
        if cfg.schedule == "step":
            factor = cfg.gamma ** (epoch // cfg.step)
        elif cfg.schedule == "multistep":
            factor = cfg.gamma ** sum(epoch >= m for m in self.milestones)
        elif cfg.schedule == "cosine":
            span = max(cfg.schedule_span - cfg.warmup_epochs, 1e-9)
            progress = min(max(t - cfg.warmup_epochs, 0.0) / span, 1.0)
            factor = 0.5 * (1 + math.cos(math.pi * progress))
        elif cfg.schedule == "plateau":
            factor = self.plateau_factor
        else:
            factor = 1.0
        if cfg.warmup_epochs > 0 and t < cfg.warmup_epochs:
            factor *= (it + 1) / (cfg.warmup_epochs * self.steps)
        return self.peak * factor

    def epoch_end(self, monitored_loss: float) -> None:
        """Feed the epoch's validation loss (plateau schedule: ÷gamma after `patience` flat epochs)."""
        if self.cfg.schedule != "plateau":
            return
        if monitored_loss < self.best * (1 - 1e-4):
            self.best, self.bad_epochs = monitored_loss, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.cfg.plateau_patience:
                self.plateau_factor *= self.cfg.gamma
                self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "plateau_factor": self.plateau_factor,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_factor = float(state["plateau_factor"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
