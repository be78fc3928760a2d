"""Training checkpoints: full state, written atomically, loadable with ``weights_only=True``.

A checkpoint holds the model, optimizer, LR-schedule and grad-scaler states, the position
(``epoch`` in progress and ``step`` within it), the per-epoch history, RNG states stored as
tensors and plain types, and the config. ``config_differences`` says what a ``--resume`` would
change, so an incompatible checkpoint is refused with the list of differing options.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from senet.utils.io import atomic_write

FORMAT_VERSION = 1

#: options that may change between a run and its resumption (they do not change the result)
RUNTIME_FIELDS = frozenset(
    {
        "out", "device", "workers", "threads", "progress", "tensorboard", "resume", "force",
        "stop_after_epochs", "data_dir", "eval_batch_size", "download", "recipe", "compile",
        "keep_freed_memory",
    }
)  # fmt: skip


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


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus format version and RNG states) atomically: temp file, fsync, rename."""
    payload = {"format_version": FORMAT_VERSION, "rng": rng_state(), **state}
    return atomic_write(path, lambda p: torch.save(payload, p))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint without executing code (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"checkpoint {path} could not be read safely (weights_only=True): {err}"
        ) from err
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(
            f"{path} is not a senet training checkpoint (no model/config); use --force to start over"
        )
    return state


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Options that differ between a checkpoint's config and the current one (runtime ones excepted)."""
    derived = {"effective_lr", "milestone_epochs", "world_size"}  # follow from the fields compared
    keys = sorted((set(saved) | set(current)) - RUNTIME_FIELDS - derived)
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
