"""One epoch of training and one pass of evaluation, shared by ``senet train`` and analysis code.

``train_one_epoch(step, loader, epoch)`` runs the SGD steps of one epoch (optionally from a step
in the middle) with a ``StepRunner``'s model, optimizer, schedule and precision, and reports
progress through a ``TrainLog``; ``evaluate(model, batches)`` gives top-1/top-5 error, loss and
count. Determinism: the batches depend only on (seed, epoch, step) (``senet.data``) and, when the
runner has a seed, the global RNG is re-seeded from (seed, epoch, step, rank) before every step,
so a run stopped anywhere and resumed computes bitwise the same weights on CPU.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from senet.data import build_loader, mix_seed
from senet.train import distributed as D
from senet.train.metrics import topk_correct

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


def autocast(device: torch.device, amp: str) -> Any:
    """``torch.autocast`` for ``amp`` ("bf16"/"fp16"), or a no-op for "none"."""
    if amp == "none":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


class TrainLog:
    """Callbacks of the training loop; the default does nothing (``ConsoleLog`` prints)."""

    def epoch_start(self, epoch: int, epochs: int, start_step: int, steps: int) -> None:
        """Epoch ``epoch`` (0-based) of ``epochs`` begins at ``start_step`` of ``steps``."""

    def step(self, epoch: int, step: int, steps: int, sums: torch.Tensor) -> None:
        """Step ``step`` is done; ``sums`` = (loss sum, top-1 hits, top-5 hits, images) so far."""

    def epoch_end(self, record: dict[str, Any], epochs: int) -> None:
        """The epoch's record (``metrics.jsonl`` row) is complete."""

    def message(self, text: str) -> None:
        """A one-line note for the user (resume position, interruption, warnings)."""

    def close(self) -> None:
        """The run ends (also on an error): close what is open (a progress bar)."""


class StopFlag:
    """Set by SIGINT/SIGTERM (or ``request``); the loop checkpoints at the next step and returns."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        self.signal = signum

    def request(self, signum: int = signal.SIGTERM) -> None:
        self.signal = signum

    @contextmanager
    def installed(self) -> Iterator[StopFlag]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in old:
            signal.signal(s, self)
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


@dataclass
class StepRunner:
    """What one optimizer step needs: the model as called, optimizer, loss, lr and precision.

    ``lr_at(epoch, step)`` is the learning rate; each param group's rate is it × the group's
    ``lr_mult`` (default 1). ``seed``: re-seed the global RNG before every step from
    (seed, epoch, step, rank), or leave it alone (None).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    lr_at: Callable[[int, int], float]
    criterion: nn.Module = field(default_factory=nn.CrossEntropyLoss)
    amp: str = "none"
    scaler: torch.amp.GradScaler | None = None
    seed: int | None = None
    dist: D.DistInfo | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    train_mode: Callable[[], None] | None = None  # puts the model in training mode (frozen parts)
    #: parameters the optimizer must leave as they are this epoch (their gradients are dropped
    #: before the step, so neither the update, momentum nor weight decay moves them)
    frozen: tuple[nn.Parameter, ...] = ()

    def __post_init__(self) -> None:
        self.rank = self.dist.rank if self.dist is not None else 0
        self.distributed = self.dist is not None and self.dist.distributed
        self._mults = [g.get("lr_mult", 1.0) for g in self.optimizer.param_groups]
        self._cuda = self.device.type == "cuda"

    def set_lr(self, lr: float) -> None:
        for group, mult in zip(self.optimizer.param_groups, self._mults):
            group["lr"] = lr * mult

    def reseed(self, epoch: int, step: int) -> None:
        if self.seed is None:
            return
        s = mix_seed(self.seed, epoch, step, self.rank, 2)
        torch.default_generator.manual_seed(s)  # torch.manual_seed's CPU part, without its overhead
        if self._cuda:
            torch.cuda.manual_seed(s)


@dataclass
class EpochResult:
    """How far an epoch got: the sums (loss, top-1, top-5, images), next step, last lr, time."""

    sums: torch.Tensor
    next_step: int
    lr: float
    time_s: float
    images: int  # images trained in this call (this process)
    interrupted: bool = False


def _iterate(
    loader: Any, epoch: int, start_step: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if hasattr(loader, "iterate"):
        loader.set_epoch(epoch)
        return loader.iterate(start_step)
    return islice(iter(loader), start_step, None)


def train_one_epoch(
    run: StepRunner,
    loader: Any,
    epoch: int,
    *,
    start_step: int = 0,
    sums: torch.Tensor | None = None,
    stop: StopFlag | None = None,
    log: TrainLog | None = None,
    epochs: int = 0,
) -> EpochResult:
    """Train ``epoch`` from ``start_step`` (a senet loader, or any sized iterable of batches).

    Raises ``NonFiniteLossError`` (before the step is applied) when the loss is NaN/inf; returns
    early with ``interrupted=True`` after the step at which ``stop`` was set (all ranks agree).
    """
    log = log or TrainLog()
    device, model, opt = run.device, run.model, run.optimizer
    steps = len(loader)
    acc = torch.zeros(4, dtype=torch.float64, device=device)
    if sums is not None:
        acc += sums.to(device)
    (run.train_mode or model.train)()
    log.epoch_start(epoch, epochs, start_step, steps)
    t0, lr, step, images = time.perf_counter(), run.lr_at(epoch, start_step), start_step, 0
    for step, (x, y) in enumerate(_iterate(loader, epoch, start_step), start=start_step):
        x, y = x.to(device, non_blocking=True), torch.as_tensor(y).to(device, non_blocking=True)
        lr = run.lr_at(epoch, step)
        run.set_lr(lr)
        run.reseed(epoch, step)
        with autocast(device, run.amp):
            logits = model(x)
            loss = run.criterion(logits.float(), y)
        stopping = _check(run, loss, stop, epoch, step, lr)
        opt.zero_grad(set_to_none=True)
        if run.scaler is not None and run.scaler.is_enabled():
            run.scaler.scale(loss).backward()
            _drop_frozen_grads(run.frozen)
            run.scaler.step(opt)
            run.scaler.update()
        else:
            loss.backward()
            _drop_frozen_grads(run.frozen)
            opt.step()
        with torch.no_grad():
            c1, c5 = topk_correct(logits.detach().float(), y)
            n = torch.tensor(float(len(y)), device=device, dtype=torch.float64)
            acc += torch.stack([loss.detach().double() * len(y), c1.double(), c5.double(), n])
        images += len(y)
        log.step(epoch, step, steps, acc)
        if stopping:
            return EpochResult(acc, step + 1, lr, time.perf_counter() - t0, images, True)
    return EpochResult(acc, steps, lr, time.perf_counter() - t0, images)


def _drop_frozen_grads(params: tuple[nn.Parameter, ...]) -> None:
    """SGD skips a parameter without a gradient: no update, no momentum, no weight decay."""
    for p in params:
        p.grad = None


def _check(
    run: StepRunner, loss: torch.Tensor, stop: StopFlag | None, epoch: int, step: int, lr: float
) -> bool:
    """Raise on a non-finite loss; whether to stop after this step (agreed by all ranks)."""
    asked = stop is not None and stop.signal is not None
    if run.distributed:
        bad_here = not bool(torch.isfinite(loss.detach()))
        flags = torch.tensor([float(bad_here), float(asked)], device=run.device)
        D.all_reduce_sum(flags, run.dist)  # type: ignore[arg-type]
        bad, asked = bool(flags[0] > 0), bool(flags[1] > 0)
        value = loss.item()
    else:
        value = loss.item()
        bad = not math.isfinite(value)
    if bad:
        raise NonFiniteLossError(
            f"training loss became {value} at epoch {epoch + 1} step {step} (lr {lr:.4g})"
        )
    return asked


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Batches | Dataset,
    *,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    amp: str = "none",
    dist: D.DistInfo | None = None,
    return_logits: bool = False,
) -> dict[str, Any]:
    """Top-1/top-5 error (%), mean cross-entropy and image count of ``model`` on ``data`` (Sec. 5).

    ``data`` is any iterable of ``(images, labels)`` batches (a senet loader, a DataLoader, a
    list) or a dataset (an in-memory one is normalised with ``mean``/``std``, else with the
    model's checkpoint metadata, else with its own statistics). Top-5 is top-min(5, C). The model
    runs in eval mode under ``amp`` autocast; with ``dist`` the counts are summed over ranks.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if isinstance(data, Dataset):
        meta = getattr(model, "checkpoint_metadata", {}) or {}
        resize = meta.get("resize", meta.get("eval_resize"))
        data = build_loader(
            data,
            batch_size,
            train=False,
            mean=mean or meta.get("mean"),
            std=std or meta.get("std"),
            device=device,
            input_size=meta.get("input_size"),
            eval_resize=resize,
        )
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top-1 hits, top-5 hits, n
    logits_all, labels_all = [], []
    try:
        for x, y in data:
            x, y = x.to(device, non_blocking=True), torch.as_tensor(y).to(device, non_blocking=True)
            with autocast(device, amp):
                logits = model(x)
            logits = logits.float()
            c1, c5 = topk_correct(logits, y)
            loss = nn.functional.cross_entropy(logits, y, reduction="sum")
            n = torch.tensor(float(len(y)), device=device, dtype=torch.float64)
            sums += torch.stack([loss.double(), c1.double(), c5.double(), n])
            if return_logits:
                logits_all.append(logits.cpu())
                labels_all.append(y.cpu())
    finally:
        model.train(was_training)
    if dist is not None:
        D.all_reduce_sum(sums, dist)
    loss_sum, c1, c5, n = sums.tolist()
    if n == 0:
        raise ValueError("evaluation data is empty")
    out: dict[str, Any] = {
        "top1_err": 100.0 * (1 - c1 / n),
        "top5_err": 100.0 * (1 - c5 / n),
        "loss": loss_sum / n,
        "n": int(n),
    }
    if return_logits:
        out["logits"], out["labels"] = torch.cat(logits_all), torch.cat(labels_all)
    return out
