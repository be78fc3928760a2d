"""The training loop and evaluation: SGD with the paper's recipes, resumable, on one or many processes.

``train(config)`` runs (or resumes) a run into ``config.out`` with the layout of
docs/ARCHITECTURE.md; ``evaluate(model, data)`` gives top-1/top-5 error (%), loss and count.
Determinism: the batch order and augmentation depend only on (seed, epoch, step) and the global
RNG is re-seeded from (seed, epoch, step, rank) before every step, so a run interrupted anywhere
and resumed ends with bitwise the same weights on CPU as an uninterrupted run.
"""

from __future__ import annotations

import json
import platform
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from senet._version import __version__
from senet.data import build_loader, mix_seed
from senet.factory import create_model
from senet.interop.weights_file import save_weights
from senet.train import distributed as D
from senet.train.checkpoint import (
    config_differences,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from senet.train.inputs import Loader, build_inputs
from senet.train.metrics import RunRecorder, plot_curves, topk_correct
from senet.train.recipes import TrainConfig
from senet.train.schedule import LRSchedule
from senet.utils.io import atomic_write_json
from senet.utils.malloc import keep_freed_memory

NOTE_EVERY_S = 60.0  # without a progress bar (not a TTY), a progress line on stderr this often


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


def _autocast(device: torch.device, amp: str) -> Any:
    if amp == "none":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Loader | Dataset,
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

    ``data`` is a loader or a dataset (an in-memory one is normalised with ``mean``/``std``, else
    with the model's checkpoint metadata, else with its own statistics). Top-5 is top-min(5, C).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if isinstance(data, Dataset):
        meta = getattr(model, "checkpoint_metadata", {}) or {}
        mean = mean or meta.get("mean")
        std = std or meta.get("std")
        resize = meta.get("resize", meta.get("eval_resize"))
        data = build_loader(
            data, batch_size, train=False, mean=mean, std=std, device=device,
            input_size=meta.get("input_size"), eval_resize=resize,
        )  # fmt: skip
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top-1 hits, top-5 hits, n
    logits_all, labels_all = [], []
    for x, y in data:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(x)
        logits = logits.float()
        c1, c5 = topk_correct(logits, y)
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        sums += torch.stack(
            [loss.double(), c1.double(), c5.double(), torch.tensor(len(y), device=device).double()]
        )
        if return_logits:
            logits_all.append(logits.cpu())
            labels_all.append(y.cpu())
    model.train(was_training)
    if dist is not None:
        D.all_reduce_sum(sums, dist)
    loss_sum, c1, c5, n = sums.tolist()
    if n == 0:
        raise ValueError("evaluation data is empty")
    out: dict[str, Any] = {
        "top1_err": 100.0 * (1 - c1 / n), "top5_err": 100.0 * (1 - c5 / n), "loss": loss_sum / n, "n": int(n),
    }  # fmt: skip
    if return_logits:
        out["logits"], out["labels"] = torch.cat(logits_all), torch.cat(labels_all)
    return out


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it between steps and checkpoints before exiting."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        self.signal = signum

    @contextmanager
    def installed(self) -> Any:
        import threading

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


def _model_for(config: TrainConfig, num_classes: int, in_chans: int, size: int) -> nn.Module:
    options = dict(config.model_options)
    if "num_classes" in options:
        raise ValueError(
            "set num_classes with --num-classes (TrainConfig.num_classes), not in model options"
        )
    if config.num_classes is not None and config.num_classes != num_classes:
        raise ValueError(
            f"--num-classes {config.num_classes} disagrees with the data, which has {num_classes} classes; "
            "drop --num-classes (it defaults to the data's) or point --data-dir at the right dataset"
        )
    model = create_model(config.model, num_classes=num_classes, **options)
    probe = torch.zeros(2, in_chans, min(size, 64), min(size, 64))
    try:
        model.eval()
        with torch.no_grad():
            out = model(probe)
    except RuntimeError as err:
        raise ValueError(
            f"model {config.model} does not take the data's {in_chans}-channel images ({err}); "
            f"pass the model option in_chans={in_chans} (e.g. --model-option in_chans={in_chans})"
        ) from None
    finally:
        model.train()
    if out is not None and out.shape[1] != num_classes:
        raise ValueError(
            f"model {config.model} outputs {out.shape[1]} classes but the data has {num_classes}"
        )
    return model


def _status_line(rec: dict[str, Any], epochs: int) -> str:
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


def train(config: TrainConfig) -> dict[str, Any]:
    """Train ``config`` into ``config.out``; returns the summary (also written as summary.json).

    Resumable (``config.resume``) from ``out/checkpoint.pt``; a finished run (summary.json
    present) is returned as is unless ``config.force``. Under torchrun it trains with DDP.
    """
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.keep_freed_memory:
        keep_freed_memory()  # large maps reused instead of page-faulted in anew (no-op off glibc)
    dist = D.setup(config.device)
    try:
        return _train(config, dist)
    finally:
        D.cleanup(dist)


def _prepare_out(config: TrainConfig, out: Path, dist: D.DistInfo) -> dict[str, Any] | None:
    summary, ckpt = out / "summary.json", out / "checkpoint.pt"
    if summary.is_file() and not config.force:
        done = json.loads(summary.read_text())
        done["status"] = "already_finished"
        if dist.is_main:
            print(
                f"{out} holds a finished run (summary.json); pass --force to train it again",
                file=sys.stderr,
            )
        return done
    if ckpt.is_file() and not config.resume and not config.force:
        raise ValueError(
            f"{out} already holds a checkpoint of an unfinished run; pass --resume to continue it, "
            "--force to start over, or a different --out"
        )
    D.barrier(dist)
    if dist.is_main and config.force and not config.resume:
        for name in ("summary.json", "checkpoint.pt", "metrics.jsonl", "metrics.csv"):
            (out / name).unlink(missing_ok=True)
    D.barrier(dist)
    return None


def _train(config: TrainConfig, dist: D.DistInfo) -> dict[str, Any]:
    out = Path(config.out_dir)
    done = _prepare_out(config, out, dist)
    if done is not None:
        return done
    device, main = dist.device, dist.is_main
    if config.amp == "fp16" and device.type == "cpu":
        raise ValueError("--amp fp16 needs a CUDA device; use --amp bf16 on CPU")

    train_loader, val_loader, prep = build_inputs(config, dist.rank, dist.world_size, device)
    steps = len(train_loader)
    torch.manual_seed(config.seed)
    model = _model_for(
        config, len(prep.classes), prep.preprocessing.in_chans, prep.preprocessing.input_size
    )
    if config.sync_bn and dist.distributed:
        if device.type != "cuda":
            raise ValueError(
                "--sync-bn needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel); drop it on CPU"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(
        device, memory_format=torch.channels_last if config.channels_last else torch.preserve_format
    )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.effective_lr, momentum=config.momentum,
        nesterov=config.nesterov, weight_decay=config.weight_decay,
    )  # fmt: skip
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    schedule = LRSchedule(config, steps)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    start_epoch, start_step, history, partial = 0, 0, [], None
    ckpt_path = out / "checkpoint.pt"
    cfg_dict = config.to_dict()
    if config.resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        diffs = config_differences(state["config"], cfg_dict)
        if diffs:
            raise ValueError(
                f"cannot resume from {ckpt_path}: it was written with different options ("
                + "; ".join(diffs)
                + "); rerun with the checkpoint's options, or --force to start over"
            )
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:
            raise ValueError(
                f"cannot resume from {ckpt_path}: its weights do not fit {config.model}: {err}"
            ) from None
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        schedule.load_state_dict(state["schedule"])
        set_rng_state(state["rng"])
        start_epoch, start_step = int(state["epoch"]), int(state["step"])
        history, partial = list(state["history"]), state.get("partial")
        if main:
            print(
                f"resuming {out} at epoch {start_epoch + 1} step {start_step}/{steps}",
                file=sys.stderr,
            )
    elif config.resume and main:
        print(f"no checkpoint in {out}; starting a new run", file=sys.stderr)

    raw_model = model
    if dist.distributed:
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    fwd_model = torch.compile(model) if config.compile else model

    recorder = RunRecorder(out, main, config.tensorboard)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", {**cfg_dict, "world_size": dist.world_size})
        recorder.write(history)
        if recorder.tensorboard_note:
            print(recorder.tensorboard_note, file=sys.stderr)

    def checkpoint(epoch: int, step: int, acc: torch.Tensor | None) -> None:
        if main:
            save_checkpoint(ckpt_path, {
                "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "epoch": epoch, "step": step, "history": history, "config": cfg_dict,
                "partial": None if acc is None else acc.cpu(),
            })  # fmt: skip
        D.barrier(dist)

    progress = sys.stderr.isatty() if config.progress is None else config.progress
    stop = _StopFlag()
    epochs_this_call, status = 0, "finished"
    t_run = time.perf_counter()
    with stop.installed():
        for epoch in range(start_epoch, config.epochs):
            if (
                config.stop_after_epochs is not None
                and epochs_this_call >= config.stop_after_epochs
            ):
                status = "stopped"
                break
            train_loader.set_epoch(epoch)
            model.train()
            if config.freeze_bn_epochs and epoch >= config.epochs - config.freeze_bn_epochs:
                for m in raw_model.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
            acc = torch.zeros(4, dtype=torch.float64, device=device)
            if partial is not None and start_step > 0:
                acc += partial.to(device)
            bar = None
            if progress and main:
                from tqdm import tqdm

                bar = tqdm(
                    total=steps,
                    initial=start_step,
                    desc=f"epoch {epoch + 1}/{config.epochs}",
                    leave=False,
                )
            t0, lr = time.perf_counter(), schedule.lr(epoch, start_step)
            last_note = t0
            for step, (x, y) in enumerate(train_loader.iterate(start_step), start=start_step):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                lr = schedule.lr(epoch, step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                torch.manual_seed(mix_seed(config.seed, epoch, step, dist.rank, 2))
                with _autocast(device, config.amp):
                    logits = fwd_model(x)
                    loss = criterion(logits.float(), y)
                flags = torch.tensor(
                    [float(not torch.isfinite(loss.detach())), float(stop.signal is not None)],
                    device=device,
                )
                D.all_reduce_sum(flags, dist)
                if flags[0] > 0:
                    if bar is not None:
                        bar.close()
                    last = f"end of epoch {start_epoch if not history else history[-1]['epoch']}"
                    kept = (
                        f"the last good checkpoint {ckpt_path} ({last}) is kept"
                        if ckpt_path.is_file()
                        else "no checkpoint was written yet"
                    )
                    raise NonFiniteLossError(
                        f"training loss became {loss.item()} at epoch {epoch + 1} step {step} (lr {lr:.4g}); "
                        f"stopped, {kept}. Lower --lr, add --warmup-epochs or --constant-warmup-iters, "
                        "or check the data"
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                with torch.no_grad():
                    c1, c5 = topk_correct(logits.detach().float(), y)
                    acc += torch.stack([loss.detach().double() * len(y), c1.double(), c5.double(),
                                        torch.tensor(float(len(y)), device=device, dtype=torch.float64)])  # fmt: skip
                if bar is not None:
                    bar.update(1)
                elif main and time.perf_counter() - last_note > NOTE_EVERY_S:
                    last_note = time.perf_counter()
                    done_n = acc[3].item()
                    print(f"  epoch {epoch + 1} step {step + 1}/{steps}: loss {acc[0].item() / max(done_n, 1):.4f}",
                          file=sys.stderr, flush=True)  # fmt: skip
                if flags[1] > 0:
                    if bar is not None:
                        bar.close()
                    checkpoint(epoch, step + 1, acc)
                    if main:
                        print(f"interrupted (signal {stop.signal}); checkpoint saved at epoch {epoch + 1} "
                              f"step {step + 1}; continue with --resume", file=sys.stderr)  # fmt: skip
                    recorder.close()
                    return {
                        "status": "interrupted",
                        "epoch": epoch,
                        "step": step + 1,
                        "out": str(out),
                    }
            train_time = time.perf_counter() - t0
            if bar is not None:
                bar.close()
            D.all_reduce_sum(acc, dist)
            loss_sum, c1, c5, n = acc.tolist()
            rec: dict[str, Any] = {
                "epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / n,
                "train_top1_err": 100 * (1 - c1 / n), "train_top5_err": 100 * (1 - c5 / n),
                "images_per_s": (n - (partial[3].item() if partial is not None and start_step else 0)) / max(train_time, 1e-9),
                "epoch_time_s": train_time, "val_loss": None, "val_top1_err": None, "val_top5_err": None,
            }  # fmt: skip
            t1 = time.perf_counter()
            if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
                D.broadcast_buffers(raw_model, dist)
                ev = evaluate(raw_model, val_loader, device=device, amp=config.amp, dist=dist)
                rec.update(
                    val_loss=ev["loss"], val_top1_err=ev["top1_err"], val_top5_err=ev["top5_err"]
                )
            rec["eval_time_s"] = time.perf_counter() - t1
            history.append(rec)
            schedule.epoch_end(
                rec["val_loss"] if rec["val_loss"] is not None else rec["train_loss"]
            )
            start_step, partial = 0, None
            epochs_this_call += 1
            checkpoint(epoch + 1, 0, None)
            if main:
                recorder.write(history)
                print(_status_line(rec, config.epochs), flush=True)
            if stop.signal is not None:
                if main:
                    print(
                        f"interrupted (signal {stop.signal}) after epoch {epoch + 1}; continue with --resume",
                        file=sys.stderr,
                    )
                recorder.close()
                return {"status": "interrupted", "epoch": epoch + 1, "step": 0, "out": str(out)}
    recorder.close()
    if status == "stopped" or len(history) < config.epochs:
        if main:
            print(
                f"stopped after {len(history)}/{config.epochs} epochs; continue with --resume",
                file=sys.stderr,
            )
        return {
            "status": "stopped",
            "epoch": len(history),
            "step": 0,
            "out": str(out),
            "history": history,
        }
    summary = _finish(
        config,
        out,
        raw_model,
        history,
        prep,
        train_loader,
        val_loader,
        dist,
        time.perf_counter() - t_run,
    )
    return summary


def _finish(
    config: TrainConfig, out: Path, model: nn.Module, history: list[dict[str, Any]], prep: Any,
    train_loader: Loader, val_loader: Loader, dist: D.DistInfo, run_time: float,
) -> dict[str, Any]:  # fmt: skip
    """Write model.safetensors, curves.png and (last) summary.json; return the summary."""
    last = history[-1]
    vals = [r["val_top1_err"] for r in history if r.get("val_top1_err") is not None]
    summary: dict[str, Any] = {
        "status": "finished", "model": config.model, "dataset": config.dataset, "recipe": config.recipe,
        "epochs": config.epochs, "seed": config.seed, "world_size": dist.world_size,
        "train_loss": last["train_loss"], "train_top1_err": last["train_top1_err"],
        "val_loss": last["val_loss"], "val_top1_err": last["val_top1_err"], "val_top5_err": last["val_top5_err"],
        "best_val_top1_err": min(vals) if vals else None,
        "train_images": len(train_loader.dataset), "val_images": len(val_loader.dataset),
        "skipped_corrupt": {
            "train": len(getattr(train_loader.dataset, "skipped", [])),
            "val": len(getattr(val_loader.dataset, "skipped", [])),
        },
        "params": sum(p.numel() for p in model.parameters()),
        "train_time_s": sum(r["epoch_time_s"] for r in history),
        "mean_images_per_s": sum(r["images_per_s"] for r in history) / len(history),
        "device": str(dist.device), "torch": torch.__version__, "senet": __version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "out": str(out), "this_call_time_s": run_time,
    }  # fmt: skip
    if dist.is_main:
        meta = {
            **prep.as_metadata(),
            "source": f"senet train ({config.recipe} recipe, {config.dataset})",
        }
        save_weights(model, out / "model.safetensors", meta)
        note = plot_curves(history, out / "curves.png", f"{config.model} on {config.dataset}")
        if note:
            print(note, file=sys.stderr)
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
            f"done: {config.model} on {config.dataset}, {config.epochs} epochs: val top-1 err {v1}, "
            f"top-5 err {v5}, train loss {last['train_loss']:.4f}; {summary['train_time_s']:.0f}s "
            f"training{extra}; results in {out}",
            flush=True,
        )
    D.barrier(dist)
    return summary
