"""Training checkpoints: full state, written atomically with one older copy kept, verified on load.

A checkpoint holds the model, optimizer, LR-schedule and grad-scaler states, the position
(``epoch`` in progress and ``step`` within it), the per-epoch history, RNG states stored as
tensors and plain types, the config, and a CRC-32 digest of all of it. Saving moves the previous
``checkpoint.pt`` to ``checkpoint.prev.pt`` first; ``load_latest`` verifies the newest and falls
back to the older one, with a warning, when the newest is unreadable (a crash mid-copy, a full
disk). Loading never executes code (``weights_only=True``). ``config_differences`` says what a
``--resume`` would change, so an incompatible checkpoint is refused with the list of options.
"""

from __future__ import annotations

import os
import pickle
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from senet.train.recipes import DERIVED_KEYS, TrainConfig, resume_may_change
from senet.utils.io import atomic_path

FORMAT_VERSION = 2  # 2: + "digest"; version-1 files (no digest) still load
CHECKPOINT, PREVIOUS = "checkpoint.pt", "checkpoint.prev.pt"

#: options that may change between a run and its resumption (they do not change the result);
#: ``epochs`` may change too: a resumed run may be extended (the schedule keeps its span)
RUNTIME_FIELDS = resume_may_change() | {"epochs", "schedule_epochs"}


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain types (``weights_only`` can load them)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            *map(_plain, np_state[2:]),
        ],
        "python": _plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _plain(obj: Any) -> Any:
    if isinstance(obj, tuple | list):
        return [_plain(o) for o in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------
# Integrity: a digest of everything in the payload
# --------------------------------------------------------------------------------------------
def digest(obj: Any) -> str:
    """CRC-32 of ``obj``'s structure, plain values and tensor bytes (order-independent of dicts)."""
    crc = 0

    def feed(x: Any) -> None:
        nonlocal crc
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            crc = zlib.crc32(f"T{t.dtype}{tuple(t.shape)}".encode(), crc)
            if t.numel():
                crc = zlib.crc32(t.reshape(-1).view(torch.uint8).numpy(), crc)
        elif isinstance(x, dict):
            crc = zlib.crc32(f"D{len(x)}".encode(), crc)
            for k in sorted(x, key=repr):
                feed(k)
                feed(x[k])
        elif isinstance(x, list | tuple):
            crc = zlib.crc32(f"L{len(x)}".encode(), crc)
            for v in x:
                feed(v)
        else:
            crc = zlib.crc32(f"{type(x).__name__}:{x!r}".encode(), crc)

    feed(obj)
    return f"crc32:{crc:08x}"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (+ format version, RNG states, digest) atomically; the file it replaces
    becomes ``checkpoint.prev.pt`` beside it."""
    path = Path(path)
    payload = {"format_version": FORMAT_VERSION, "rng": rng_state(), **state}
    payload["digest"] = digest(payload)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
        if path.is_file():
            os.replace(path, path.with_name(PREVIOUS))
    return path


def _why_unreadable(err: BaseException) -> str:
    """One line for a failed ``torch.load`` (no library internals)."""
    text = str(err)
    if isinstance(err, EOFError) or "central directory" in text or "zip archive" in text:
        return "truncated or not a complete checkpoint file"
    if isinstance(err, pickle.UnpicklingError) or "weights_only" in text.lower():
        return "it holds objects a safe load refuses (not a senet checkpoint)"
    return f"unreadable ({type(err).__name__})"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and verify one checkpoint without executing code; errors are one line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {path} is {_why_unreadable(err)}") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(
            f"{path} is not a senet training checkpoint (no model/config); use --force to start over"
        )
    stored = state.pop("digest", None)
    if stored is not None and digest(state) != stored:
        raise ValueError(f"checkpoint {path} is corrupt (its contents fail the {stored[:5]} check)")
    return state


def load_latest(out: str | Path, warn: Callable[[str], None] = print) -> dict[str, Any] | None:
    """The newest readable checkpoint of run directory ``out`` (None when it has none).

    An unreadable ``checkpoint.pt`` is reported through ``warn`` and ``checkpoint.prev.pt`` is
    used; when neither reads, a one-line ``ValueError`` lists why.
    """
    out = Path(out)
    problems = []
    for name in (CHECKPOINT, PREVIOUS):
        path = out / name
        if not path.is_file():
            continue
        try:
            state = load_checkpoint(path)
        except ValueError as err:
            problems.append(str(err))
            continue
        if problems:
            warn(
                f"warning: {problems[0]}; resuming from the older {path} "
                f"(epoch {int(state['epoch']) + (1 if state['step'] else 0)}, step {state['step']})"
            )
        return state
    if problems:
        raise ValueError(
            "; ".join(problems)
            + f"; no readable checkpoint is left in {out}: pass --force to start over"
        )
    return None


def has_checkpoint(out: str | Path) -> bool:
    return any((Path(out) / n).is_file() for n in (CHECKPOINT, PREVIOUS))


def remove_checkpoints(out: str | Path) -> None:
    for name in (CHECKPOINT, PREVIOUS):
        (Path(out) / name).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# What a resume may not change
# --------------------------------------------------------------------------------------------
def normalized_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config as the current code writes it: options it lacks (older runs) take their
    defaults; keys this code does not know are kept so a comparison can name them."""
    known = {k: v for k, v in saved.items() if k not in DERIVED_KEYS}
    try:
        full = TrainConfig.from_dict(known).to_dict()
    except (ValueError, TypeError):
        return dict(saved)
    return {**full, **{k: v for k, v in saved.items() if k not in full}}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Options that differ between a checkpoint's config and the current one (runtime ones excepted)."""
    saved, current = normalized_config(saved), normalized_config(current)
    keys = sorted((set(saved) | set(current)) - RUNTIME_FIELDS - DERIVED_KEYS)
    diffs = []
    for key in keys:
        a, b = _norm(saved.get(key)), _norm(current.get(key))
        if a != b:
            diffs.append(f"{key}: checkpoint {saved.get(key)!r} vs now {current.get(key)!r}")
    return diffs


def _norm(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in sorted(value.items())}
    return value
