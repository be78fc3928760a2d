"""Our weights format: a safetensors file whose metadata says how to rebuild the model.

Metadata (stored as one JSON string under the key ``"senet"``): ``model`` (registry name),
``options`` (create_model options), ``num_classes``, and optionally ``mean``, ``std``,
``input_size``, ``classes`` and ``source``. safetensors holds tensors only, so loading never
executes code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from senet.utils.io import atomic_write

METADATA_KEY = "senet"


def model_metadata(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """Metadata that lets ``load_model`` rebuild ``model`` (built by ``create_model``)."""
    name = getattr(model, "model_name", None)
    if name is None:
        raise ValueError("model has no model_name; build it with senet.create_model(name, ...)")
    options = dict(getattr(model, "build_options", {}))
    meta = {"model": name, "options": options, "num_classes": getattr(model, "num_classes", None)}
    meta.update(extra)
    return meta


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s state dict and metadata to ``path`` (safetensors) atomically."""
    meta = model_metadata(model, **(metadata or {}))
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    blob = json.dumps(meta, default=_jsonable)
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata={METADATA_KEY: blob}))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, tuple | set):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and metadata from a safetensors file, or a ``.pt/.pth`` file (weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                meta_blob = (f.metadata() or {}).get(METADATA_KEY)
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except Exception as err:  # safetensors raises its own error types for corrupt files
            raise ValueError(f"checkpoint {path} is not a readable safetensors file: {err}") from err
        return state, json.loads(meta_blob) if meta_blob else {}
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {path} could not be read safely (weights_only=True): {err}") from err
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        return obj["model"], obj.get("meta", {}) or {}
    if isinstance(obj, dict) and "state_dict" in obj:
        return obj["state_dict"], {}
    if isinstance(obj, dict):
        return obj, {}
    raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> dict[str, Any]:
    """Load ``path`` into ``model``; mismatches are reported by name. Returns the metadata."""
    state, meta = read_weights(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if strict and (missing or unexpected or wrong):
        parts = []
        if missing:
            parts.append(f"missing keys {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_few(unexpected)}")
        if wrong:
            parts.append(
                "shape mismatches "
                + _few([f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in wrong])
            )
        name = meta.get("model", "?")
        raise ValueError(
            f"checkpoint {path} (model {name}) does not fit {getattr(model, 'model_name', 'this model')}: "
            + "; ".join(parts)
        )
    model.load_state_dict(state, strict=strict)
    return meta


def _few(items: list[str], n: int = 5) -> str:
    more = f" … (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def load_model(path: str | Path, **overrides: Any) -> nn.Module:
    """Rebuild the model a checkpoint describes (its metadata) and load its weights."""
    from senet import create_model

    state, meta = read_weights(path)
    if "model" not in meta:
        raise ValueError(
            f"checkpoint {path} has no senet metadata; build the model yourself and call "
            "load_weights(model, path), or convert it with `senet convert`"
        )
    options = {**meta.get("options", {}), **overrides}
    model = create_model(meta["model"], num_classes=meta.get("num_classes"), **options)
    load_weights(model, path)
    model.checkpoint_metadata = meta  # type: ignore[assignment]
    return model
