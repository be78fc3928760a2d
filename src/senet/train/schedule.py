"""Learning-rate schedules of the paper (step, multistep, plateau) and modern ones (cosine, linear,
warm-up).

The rate is a pure function of (epoch, step) plus, for ``plateau``, a small state saved in the
checkpoint, so a resumed run uses exactly the rates of an uninterrupted one. Schedules that depend
on the run's length (multistep fractions, cosine) span ``config.schedule_span`` epochs
(``schedule_epochs``, else ``epochs``): an extended run keeps its original span, so the epochs it
trained keep their rates and the added ones continue the schedule's formula past its end
(multistep and step: the last milestone's rate, resp. the next ÷gamma steps; plateau: as before).

``plateau`` with ``plateau_drops = N`` (the Sec. 6 ablations: 3) decays N times and then ends the
run at the next plateau: ``finished`` turns true and the run stops before ``epochs`` (a cap).
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
        self.drops = 0  # plateau decays so far
        self.finished_at: int | None = None  # plateau_drops: the epoch (1-based) that ended the run

    @property
    def finished(self) -> bool:
        """The plateau schedule has ended the run (the plateau after its last drop)."""
        return self.finished_at is not None

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
        elif cfg.schedule == "linear":  # linear decay to 0 (budgeted training, Li et al. 2020)
            span = max(cfg.schedule_span - cfg.warmup_epochs, 1e-9)
            factor = max(0.0, 1.0 - min(max(t - cfg.warmup_epochs, 0.0) / span, 1.0))
        elif cfg.schedule == "plateau":
            factor = self.plateau_factor
        else:
            factor = 1.0
        if cfg.warmup_epochs > 0 and t < cfg.warmup_epochs:
            factor *= (it + 1) / (cfg.warmup_epochs * self.steps)
        return self.peak * factor

    def epoch_end(self, monitored_loss: float, epoch: int | None = None) -> None:
        """Feed epoch ``epoch``'s (0-based) validation loss. Plateau schedule: ÷gamma after
        ``patience`` flat epochs; with ``plateau_drops`` the plateau after the last drop ends the run."""
        if self.cfg.schedule != "plateau" or self.finished:
            return
        if monitored_loss < self.best * (1 - 1e-4):
            self.best, self.bad_epochs = monitored_loss, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs <= self.cfg.plateau_patience:
            return
        self.bad_epochs = 0
        limit = self.cfg.plateau_drops
        if limit is not None and self.drops >= limit:
            self.finished_at = (epoch + 1) if epoch is not None else -1
            return
        self.plateau_factor *= self.cfg.gamma
        self.drops += 1

    def stop_reason(self) -> str | None:
        """Why the schedule ended the run (None while it has not)."""
        if not self.finished:
            return None
        n = self.cfg.plateau_drops
        return (
            f"the validation loss plateaued after the last of {n} lr drops "
            f"(epoch {self.finished_at})"
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "plateau_factor": self.plateau_factor,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "drops": self.drops,
            "finished_at": self.finished_at,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_factor = float(state["plateau_factor"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.drops = int(state.get("drops", 0))  # checkpoints before plateau_drops: none counted
        finished = state.get("finished_at")
        self.finished_at = None if finished is None else int(finished)
