"""A training run: ``train(config)`` — lock, resume or extend, epochs, checkpoints, the results.

``train(config)`` runs (or resumes) a run into ``config.out`` with the layout of
docs/ARCHITECTURE.md. The steps themselves are ``senet.train.engine.train_one_epoch`` and
``evaluate``; this module decides where a run starts (a fresh directory, a checkpoint, a finished
run to extend), which precision it trains in, and writes checkpoints, metrics and the summary.
A run interrupted anywhere (Ctrl-C, SIGTERM, ``stop_after_epochs``) and resumed ends with bitwise
the same weights on CPU as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet._version import __version__
from senet.interop.weights_file import RUN_WEIGHTS, save_weights
from senet.layers import native
from senet.train import distributed as D
from senet.train.checkpoint import (
    CHECKPOINT,
    config_differences,
    has_checkpoint,
    load_latest,
    remove_checkpoints,
    save_checkpoint,
    set_rng_state,
)
from senet.train.console import ConsoleLog
from senet.train.engine import (
    NonFiniteLossError,
    StepRunner,
    StopFlag,
    TrainLog,
    evaluate,
    train_one_epoch,
)
from senet.train.inputs import DataInfo, Loader, build_inputs
from senet.train.metrics import RunRecorder, plot_curves
from senet.train.model_setup import (
    build_for_data,
    describe_start,
    frozen_bn_params,
    param_groups,
    set_train_mode,
    start_weights,
)
from senet.train.recipes import TrainConfig
from senet.train.rundir import RunLock, RunLockedError
from senet.train.schedule import LRSchedule
from senet.utils.cpu import choose_precision
from senet.utils.io import atomic_write_json
from senet.utils.malloc import keep_freed_memory

__all__ = ["NonFiniteLossError", "evaluate", "train"]


def train(config: TrainConfig, log: TrainLog | None = None) -> dict[str, Any]:
    """Train ``config`` into ``config.out``; returns the summary (also written as summary.json).

    Resumable (``config.resume``) from ``out/checkpoint.pt`` (or the older copy beside it), also
    with more epochs than before (extending a finished run); a finished run is returned as is
    unless ``config.force``. The directory is locked while training. Under torchrun: DDP.
    ``log`` receives progress (default: ``ConsoleLog`` on rank 0).
    """
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.keep_freed_memory:
        keep_freed_memory()  # large maps reused instead of page-faulted in anew (no-op off glibc)
    dist = D.setup(config.device)
    log = log or ConsoleLog(dist.is_main, config.progress)
    lock = None
    try:
        lock = _lock(Path(config.out_dir), dist, log)
        return _Run.start(config, dist, log)
    finally:
        log.close()
        if lock is not None:
            lock.release()
        D.cleanup(dist)


def _lock(out: Path, dist: D.DistInfo, log: TrainLog) -> RunLock | None:
    """Rank 0 locks the run directory; every rank learns whether that failed."""
    lock, error = None, None
    if dist.is_main:
        try:
            lock = RunLock(out, log.message).acquire()
        except RunLockedError as err:
            error = str(err)
    error = D.broadcast_object(error, dist)
    if error:
        raise RunLockedError(error)
    return lock


# --------------------------------------------------------------------------------------------
# Where a run starts: fresh, from a checkpoint, or extending a finished run
# --------------------------------------------------------------------------------------------
@dataclass
class _Start:
    config: TrainConfig
    state: dict[str, Any] | None = None
    done: dict[str, Any] | None = None  # a finished run's summary (nothing to do)
    extends: bool = False


def _where_to_start(config: TrainConfig, out: Path, dist: D.DistInfo, log: TrainLog) -> _Start:
    summary = out / "summary.json"
    extends = False
    if summary.is_file() and not config.force:
        done = json.loads(summary.read_text())
        trained = int(done.get("epochs", 0))
        if done.get("stop") == "plateau":  # the schedule ended it: there is nothing to extend
            done["status"] = "already_finished"
            log.message(
                f"{out} holds a finished run of {trained} epochs that its plateau schedule ended "
                f"({done.get('stop_reason')}); --force trains it again"
            )
            return _Start(config, done=done)
        if not config.resume or config.epochs <= trained:
            done["status"] = "already_finished"
            extend = f"senet train --resume --out {out} --epochs M (M > {trained}) extends it"
            log.message(
                f"{out} holds a finished run of {trained} epochs (summary.json); {extend}, "
                "--force trains it again"
            )
            return _Start(config, done=done)
        extends = True
    if has_checkpoint(out) and not config.resume and not config.force:
        raise ValueError(
            f"{out} already holds a checkpoint of an unfinished run; pass --resume to continue it, "
            "--force to start over, or a different --out"
        )
    D.barrier(dist)
    if dist.is_main and config.force and not config.resume:
        remove_checkpoints(out)
        for name in ("summary.json", "metrics.jsonl", "metrics.csv"):
            (out / name).unlink(missing_ok=True)
    D.barrier(dist)
    state = load_latest(out, log.message) if config.resume else None
    if config.resume and state is None:
        log.message(f"no checkpoint in {out}; starting a new run")
    if state is not None:
        config = resumed_config(config, state, log)
    elif extends:
        raise ValueError(
            f"{out} holds a finished run but no checkpoint to extend it from; pass --force to "
            "train it again with the new --epochs"
        )
    if extends and dist.is_main:
        summary.unlink()  # the run is unfinished again until the extension ends
    return _Start(config, state, extends=extends)


def resumed_config(config: TrainConfig, state: dict[str, Any], log: TrainLog) -> TrainConfig:
    """``config`` as it resumes ``state``: precision left on auto kept from the checkpoint, the
    schedule's span pinned when ``epochs`` changes; incompatible options refused (listed)."""
    saved = state["config"]
    trained = int(state["epoch"]) + (1 if state.get("step") else 0)
    if config.epochs < trained:
        raise ValueError(
            f"the run has already trained {trained} epochs; --epochs {config.epochs} would undo "
            f"them: pass --epochs ≥ {trained}"
        )
    span = int(saved.get("schedule_epochs") or saved["epochs"])
    changes: dict[str, Any] = {}
    if config.amp == "auto":
        changes["amp"] = saved.get("amp", "none")
    elif config.amp != saved.get("amp", "none"):
        log.message(
            f"note: autocast {saved.get('amp', 'none')} in the checkpoint, {config.amp} now as "
            "asked; from here the run is not bitwise what an uninterrupted one would compute"
        )
    if config.channels_last is None:
        changes["channels_last"] = bool(saved.get("channels_last", False))
    if config.schedule_epochs is None and config.epochs != span:
        changes["schedule_epochs"] = span
    config = dataclasses.replace(config, **changes)
    diffs = config_differences(saved, config.to_dict())
    if config.schedule_span != span:
        diffs.append(f"schedule_epochs: checkpoint {span} vs now {config.schedule_span}")
    if diffs:
        raise ValueError(
            "cannot resume from the checkpoint: it was written with different options ("
            + "; ".join(diffs)
            + "); rerun with the checkpoint's options (`senet train --resume --out DIR` reads them), "
            "or --force to start over"
        )
    if config.epochs > span and config.schedule in ("cosine", "linear"):
        raise ValueError(
            f"a {config.schedule} schedule ends at lr 0 after its {span} epochs, so --epochs {config.epochs} "
            "would train at lr 0; start a new run from this one's weights instead "
            "(--init OUT/model.safetensors with its own schedule)"
        )
    if config.epochs > int(saved["epochs"]):
        log.message(
            f"extending the run from {saved['epochs']} to {config.epochs} epochs; the "
            f"{config.schedule} schedule keeps its {span}-epoch span (docs/training.md)"
        )
    return config


def _resolve_precision(
    config: TrainConfig, device: torch.device, resumed: bool
) -> tuple[TrainConfig, str]:
    """The run's config with autocast/layout resolved, and the sentence saying why."""
    choice = choose_precision(device, config.amp, config.channels_last)
    if resumed:
        choice = dataclasses.replace(choice, reason="kept from the run's checkpoint unless asked")
    config = dataclasses.replace(config, amp=choice.amp, channels_last=choice.channels_last)
    return config, choice.describe() + native.describe_for(device)


# --------------------------------------------------------------------------------------------
# The run itself
# --------------------------------------------------------------------------------------------
@dataclass
class _Run:
    """A run in progress: its data, model, optimizer, position and records."""

    config: TrainConfig
    dist: D.DistInfo
    log: TrainLog
    out: Path
    train_loader: Loader
    val_loader: Loader
    info: DataInfo
    model: nn.Module  # the bare model (weights, checkpoints)
    runner: StepRunner  # model as called (DDP/compiled), optimizer, schedule, precision
    schedule: LRSchedule
    precision: str
    started_from: str
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0
    step: int = 0
    partial: torch.Tensor | None = None
    recorder: RunRecorder | None = None

    @classmethod
    def start(cls, config: TrainConfig, dist: D.DistInfo, log: TrainLog) -> dict[str, Any]:
        out = Path(config.out_dir)
        start = _where_to_start(config, out, dist, log)
        if start.done is not None:
            return start.done
        if start.state is None:
            start_weights(start.config)  # a missing --init file fails before the data loads
        config, precision = _resolve_precision(start.config, dist.device, start.state is not None)
        log.message(f"precision: {precision}")
        run = cls._build(config, dist, log, out, precision, start.state)
        return run.run_epochs()

    @classmethod
    def _build(
        cls,
        config: TrainConfig,
        dist: D.DistInfo,
        log: TrainLog,
        out: Path,
        precision: str,
        state: dict[str, Any] | None,
    ) -> _Run:
        device = dist.device
        train_loader, val_loader, info = build_inputs(config, dist.rank, dist.world_size, device)
        torch.manual_seed(config.seed)
        prep = info.preprocessing
        model, notes = build_for_data(
            config, len(info.classes), prep.in_chans, prep.input_size, resuming=state is not None
        )
        for note in notes:
            log.message(f"note: {note}")
        if config.sync_bn and dist.distributed:
            if device.type != "cuda":
                raise ValueError(
                    "--sync-bn needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel); drop it on CPU"
                )
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        layout = torch.channels_last if config.channels_last else torch.preserve_format
        model.to(device, memory_format=layout)
        optimizer = torch.optim.SGD(
            param_groups(model, config),
            lr=config.effective_lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
        scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
        schedule = LRSchedule(config, len(train_loader))
        fwd = model
        if dist.distributed:
            ids = [device.index] if device.type == "cuda" else None
            fwd = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        fwd = torch.compile(fwd) if config.compile else fwd
        runner = StepRunner(
            fwd,
            optimizer,
            schedule.lr,
            nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
            amp=config.amp,
            scaler=scaler,
            seed=config.seed,
            dist=dist,
            device=device,
        )
        run = cls(
            config,
            dist,
            log,
            out,
            train_loader,
            val_loader,
            info,
            model,
            runner,
            schedule,
            precision,
            describe_start(config),
        )
        if state is not None:
            run._restore(state)
        return run

    def _restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: weights, optimizer, schedule, RNG, position, history."""
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise ValueError(
                f"cannot resume from {self.out / CHECKPOINT}: its weights do not fit "
                f"{self.config.model} ({first})"
            ) from None
        self.runner.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and self.runner.scaler is not None:
            self.runner.scaler.load_state_dict(state["scaler"])
        self.schedule.load_state_dict(state["schedule"])
        set_rng_state(state["rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history, self.partial = list(state["history"]), state.get("partial")
        steps = len(self.train_loader)
        self.log.message(f"resuming {self.out} at epoch {self.epoch + 1} step {self.step}/{steps}")

    def save_state(self, epoch: int, step: int, sums: torch.Tensor | None) -> None:
        """Checkpoint position (``epoch`` in progress, ``step`` within it) on rank 0; all wait."""
        if self.dist.is_main:
            scaler = self.runner.scaler
            save_checkpoint(
                self.out / CHECKPOINT,
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.runner.optimizer.state_dict(),
                    "schedule": self.schedule.state_dict(),
                    "scaler": scaler.state_dict()
                    if scaler is not None and scaler.is_enabled()
                    else {},
                    "epoch": epoch,
                    "step": step,
                    "history": self.history,
                    "config": self.config_dict(),
                    "partial": None if sums is None else sums.cpu(),
                },
            )
        D.barrier(self.dist)

    def config_dict(self) -> dict[str, Any]:
        return {
            **self.config.to_dict(),
            "world_size": self.dist.world_size,
            "precision": self.precision,
        }

    def run_epochs(self) -> dict[str, Any]:
        """Train the remaining epochs; the summary, or a dict saying where it stopped."""
        cfg, out = self.config, self.out
        self.recorder = RunRecorder(out, self.dist.is_main, cfg.tensorboard)
        if self.dist.is_main:
            atomic_write_json(out / "config.json", self.config_dict())
            self.recorder.write(self.history)
            if self.recorder.tensorboard_note:
                self.log.message(self.recorder.tensorboard_note)
        stop, t_run, this_call = StopFlag(), time.perf_counter(), 0
        try:
            with stop.installed():
                for epoch in range(self.epoch, cfg.epochs):
                    if self.schedule.finished:
                        break
                    if cfg.stop_after_epochs is not None and this_call >= cfg.stop_after_epochs:
                        break
                    stopped = self._epoch(epoch, stop)
                    if stopped is not None:
                        return stopped
                    this_call += 1
        finally:
            self.recorder.close()
        if len(self.history) < cfg.epochs and not self.schedule.finished:
            self.log.message(
                f"stopped after {len(self.history)}/{cfg.epochs} epochs; continue with --resume"
            )
            return {
                "status": "stopped",
                "epoch": len(self.history),
                "step": 0,
                "out": str(out),
                "history": self.history,
            }
        return self.finish(time.perf_counter() - t_run)

    def _epoch(self, epoch: int, stop: StopFlag) -> dict[str, Any] | None:
        """One epoch: train (from the saved step), evaluate, record, checkpoint; a dict if stopped."""
        cfg, start = self.config, self.step
        partial = self.partial if start > 0 else None
        self.runner.train_mode = lambda: set_train_mode(self.model, cfg, epoch, self.runner.model)
        self.runner.frozen = frozen_bn_params(self.model, cfg, epoch)
        try:
            res = train_one_epoch(
                self.runner,
                self.train_loader,
                epoch,
                start_step=start,
                sums=partial,
                stop=stop,
                log=self.log,
                epochs=cfg.epochs,
            )
        except NonFiniteLossError as err:
            last = f"end of epoch {self.history[-1]['epoch'] if self.history else epoch}"
            kept = (
                f"the last good checkpoint {self.out / CHECKPOINT} ({last}) is kept"
                if (self.out / CHECKPOINT).is_file()
                else "no checkpoint was written yet"
            )
            raise NonFiniteLossError(
                f"{err}; stopped, {kept}. Lower --lr, add --warmup-epochs or "
                "--constant-warmup-iters, or check the data"
            ) from None
        if res.interrupted:
            self.save_state(epoch, res.next_step, res.sums)
            self.log.message(
                f"interrupted (signal {stop.signal}); checkpoint saved at epoch "
                f"{epoch + 1} step {res.next_step}; continue with --resume"
            )
            return {
                "status": "interrupted",
                "epoch": epoch,
                "step": res.next_step,
                "out": str(self.out),
            }
        rec = self._record(epoch, res, partial)
        self.history.append(rec)
        self.schedule.epoch_end(
            rec["val_loss"] if rec["val_loss"] is not None else rec["train_loss"], epoch
        )
        if self.schedule.finished and rec["val_loss"] is None:  # the last epoch is evaluated
            rec.update(self._validate())
        self.step, self.partial = 0, None
        self.save_state(epoch + 1, 0, None)
        if self.dist.is_main:
            self.recorder.write(self.history)  # type: ignore[union-attr]
        self.log.epoch_end(rec, cfg.epochs)
        if self.schedule.finished:
            self.log.message(f"stopping: {self.schedule.stop_reason()}")
        if stop.signal is not None:
            self.log.message(
                f"interrupted (signal {stop.signal}) after epoch {epoch + 1}; "
                "continue with --resume"
            )
            return {"status": "interrupted", "epoch": epoch + 1, "step": 0, "out": str(self.out)}
        return None

    def _record(self, epoch: int, res: Any, partial: torch.Tensor | None) -> dict[str, Any]:
        """The epoch's metrics row (training sums over all ranks, validation when due)."""
        D.all_reduce_sum(res.sums, self.dist)
        loss_sum, c1, c5, n = res.sums.tolist()
        before = partial[3].item() if partial is not None else 0.0
        rec: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": res.lr,
            "train_loss": loss_sum / n,
            "train_top1_err": 100 * (1 - c1 / n),
            "train_top5_err": 100 * (1 - c5 / n),
            "images_per_s": (n - before) / max(res.time_s, 1e-9),
            "epoch_time_s": res.time_s,
            "val_loss": None,
            "val_top1_err": None,
            "val_top5_err": None,
        }
        t1 = time.perf_counter()
        cfg = self.config
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            rec.update(self._validate())
        rec["eval_time_s"] = time.perf_counter() - t1
        return rec

    def _validate(self) -> dict[str, float]:
        """Validation loss and errors of the current weights (all ranks)."""
        D.broadcast_buffers(self.model, self.dist)
        ev = evaluate(
            self.model,
            self.val_loader,
            device=self.dist.device,
            amp=self.config.amp,
            dist=self.dist,
        )
        return {
            "val_loss": ev["loss"],
            "val_top1_err": ev["top1_err"],
            "val_top5_err": ev["top5_err"],
        }

    def finish(self, run_time: float) -> dict[str, Any]:
        """Write model.safetensors, curves.png and (last) summary.json; return the summary."""
        cfg, history, out = self.config, self.history, self.out
        last = history[-1]
        vals = [r["val_top1_err"] for r in history if r.get("val_top1_err") is not None]
        tl, vl = self.train_loader.dataset, self.val_loader.dataset
        summary: dict[str, Any] = {
            "status": "finished",
            "model": cfg.model,
            "dataset": cfg.dataset,
            "recipe": cfg.recipe,
            "epochs": len(history),
            "max_epochs": cfg.epochs,
            **self._stop(),
            "seed": cfg.seed,
            "world_size": self.dist.world_size,
            "train_loss": last["train_loss"],
            "train_top1_err": last["train_top1_err"],
            "val_loss": last["val_loss"],
            "val_top1_err": last["val_top1_err"],
            "val_top5_err": last["val_top5_err"],
            "best_val_top1_err": min(vals) if vals else None,
            "train_images": len(tl),
            "val_images": len(vl),
            "skipped_corrupt": {
                "train": len(getattr(tl, "skipped", [])),
                "val": len(getattr(vl, "skipped", [])),
            },
            "params": sum(p.numel() for p in self.model.parameters()),
            "trainable_params": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            "started_from": self.started_from,
            "precision": self.precision,
            "amp": cfg.amp,
            "channels_last": cfg.channels_last,
            "train_time_s": sum(r["epoch_time_s"] for r in history),
            "mean_images_per_s": sum(r["images_per_s"] for r in history) / len(history),
            "device": str(self.dist.device),
            "torch": torch.__version__,
            "senet": __version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "out": str(out),
            "this_call_time_s": run_time,
        }
        if self.dist.is_main:
            self._write_results(summary)
        D.barrier(self.dist)
        return summary

    def _stop(self) -> dict[str, str]:
        """Why the run ended: ``stop`` (``epochs`` or ``plateau``) and ``stop_reason`` (a sentence)."""
        if self.schedule.finished:
            return {"stop": "plateau", "stop_reason": str(self.schedule.stop_reason())}
        return {
            "stop": "epochs",
            "stop_reason": f"trained the {self.config.epochs} epochs asked for",
        }

    def _write_results(self, summary: dict[str, Any]) -> None:
        cfg, out, last = self.config, self.out, self.history[-1]
        source = f"senet train ({cfg.recipe} recipe, {cfg.dataset}; from {self.started_from})"
        save_weights(self.model, out / RUN_WEIGHTS, {**self.info.as_metadata(), "source": source})
        note = plot_curves(self.history, out / "curves.png", f"{cfg.model} on {cfg.dataset}")
        if note:
            self.log.message(note)
        atomic_write_json(out / "summary.json", summary)
        skipped = summary["skipped_corrupt"]
        extra = (
            f"; skipped {skipped['train']}+{skipped['val']} corrupt images"
            if any(skipped.values())
            else ""
        )
        v1 = "n/a" if last["val_top1_err"] is None else f"{last['val_top1_err']:.2f}%"
        v5 = "n/a" if last["val_top5_err"] is None else f"{last['val_top5_err']:.2f}%"
        print(
            f"done: {cfg.model} on {cfg.dataset}, {summary['epochs']} epochs: val top-1 err {v1}, "
            f"top-5 err {v5}, train loss {last['train_loss']:.4f}; {summary['train_time_s']:.0f}s "
            f"training{extra}; results in {out}",
            flush=True,
        )
