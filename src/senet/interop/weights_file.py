"""Our weights format: a safetensors file whose metadata says how to rebuild the model.

Metadata (stored as one JSON string under the key ``"senet"``): ``model`` (registry name),
``options`` (create_model options), ``num_classes``, and optionally ``mean``, ``std``,
``input_size``, ``classes`` and ``source``. safetensors holds tensors only, so loading never
executes code.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from senet.data.preprocessing import Preprocessing
from senet.interop.convert import (
    SOURCES,
    Conversion,
    ConvertReport,
    convert_for_model,
    convert_state_dict,
    fill_batch_counters,
    looks_original,
    strip_prefix,
)
from senet.models.registry import build_model, get_entry
from senet.utils.io import atomic_write

METADATA_KEY = "senet"
PRUNED_KEY = "senet_pruning"  # written by senet.analysis.prune.save_pruned


def model_metadata(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """Metadata that lets ``load_model`` rebuild ``model`` (built by ``create_model``)."""
    name = getattr(model, "model_name", None)
    if name is None:
        raise ValueError("model has no model_name; build it with senet.create_model(name, ...)")
    # every option, defaults included: the layout (caffe vs torchvision) must travel with the
    # weights, and a later change of a default must not change what an old checkpoint rebuilds
    options = effective_options(model)
    meta = {"model": name, "options": options, "num_classes": getattr(model, "num_classes", None)}
    meta.update(extra)
    return meta


def save_weights(
    model: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s state dict and metadata to ``path`` (safetensors) atomically."""
    meta = model_metadata(model, **(metadata or {}))
    return save_state_dict(model.state_dict(), meta, path)


def save_state_dict(state: dict[str, torch.Tensor], meta: dict[str, Any], path: str | Path) -> Path:
    """Write a state dict in senet's key names and its metadata to ``path`` atomically."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    blob = json.dumps(meta, default=_jsonable)
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata={METADATA_KEY: blob}))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, tuple | set):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


#: the weights file of a finished training run directory
RUN_WEIGHTS = "model.safetensors"


def weights_path(path: str | Path, what: str = "weights") -> Path:
    """``path`` itself if it is a file, or a finished run directory's ``model.safetensors``.

    A missing file, or a run directory that has not finished, is a FileNotFoundError that names
    ``what`` was asked for (``"--init"``, ``"weights"``) and what to pass instead.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        if (path / RUN_WEIGHTS).is_file():
            return path / RUN_WEIGHTS
        raise FileNotFoundError(
            f"{what} {path} is a folder without {RUN_WEIGHTS}: the run has not finished (train it to "
            "the end, or resume it) or it is not a run directory"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} {path} does not exist; pass a weights file or a finished run directory"
        )
    return path


def _looks_like_torch_save(path: Path) -> bool:
    """``torch.save`` writes a zip archive (since 1.6) or, in the legacy format, a pickle."""
    with path.open("rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and metadata from a safetensors file, or a ``.pt/.pth`` file (weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                raw = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except Exception as err:  # safetensors raises its own error types for corrupt files
            raise ValueError(
                f"checkpoint {path} is not a readable safetensors file ({_one_line(err)}); "
                "pass an intact .safetensors file (re-download or re-export it)"
            ) from None
        _refuse_pruned(raw, path)
        meta_blob = raw.get(METADATA_KEY)
        return state, json.loads(meta_blob) if meta_blob else {}
    if not _looks_like_torch_save(path):
        raise ValueError(
            f"{path} is not a PyTorch checkpoint or safetensors file (it is neither a zip archive "
            "nor a pickle); pass a .pth/.pt/.safetensors file holding a state dict"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        text = str(err)
        if "Unsupported global" in text:
            raise ValueError(
                f"checkpoint {path} pickles Python objects (a whole model saved with "
                "torch.save(model)?), which senet does not load because unpickling runs code; "
                "save and pass model.state_dict() instead"
            ) from None
        why = "damaged or truncated?" if "Weights only load failed" in text else _one_line(err)
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint ({why}); pass "
            "a .pth/.pt/.safetensors file holding a state dict"
        ) from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj, meta = obj["model"], obj.get("meta", {}) or {}
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj, meta = obj["state_dict"], {}
    elif isinstance(obj, dict):
        meta = {}
    else:
        raise ValueError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a state dict; pass a file "
            "saved with torch.save(model.state_dict(), path)"
        )
    if not any(isinstance(v, torch.Tensor) for v in obj.values()):
        keys = ", ".join(map(str, list(obj)[:5])) or "nothing"
        raise ValueError(
            f"checkpoint {path} holds no tensors (keys: {keys}); pass a file holding a state dict"
        )
    return obj, meta


def _one_line(err: BaseException) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first[:200]}" if first else type(err).__name__


#: options that do not change the function a checkpoint computes in eval mode (checked otherwise)
FREE_OPTIONS = frozenset({"drop_rate"})


def _refuse_pruned(raw: dict[str, str], path: str | Path) -> None:
    """A pruned network's widths differ from its registry spec: point to the loader that knows."""
    if PRUNED_KEY in raw:
        base = json.loads(raw.get(METADATA_KEY) or "{}").get("model", "network")
        raise ValueError(
            f"checkpoint {path} holds a pruned {base} (narrower layers than the registry's); "
            "load it with senet.analysis.prune.load_pruned(path)"
        )


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The senet metadata of a safetensors file without reading its tensors ({} for other files)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return {}
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as err:
        raise ValueError(
            f"checkpoint {path} is not a readable safetensors file ({_one_line(err)}); "
            "pass an intact .safetensors file (re-download or re-export it)"
        ) from None
    _refuse_pruned(raw, path)
    blob = raw.get(METADATA_KEY)
    return json.loads(blob) if blob else {}


def preprocessing_of(meta: dict[str, Any]) -> Preprocessing:
    """The weights' evaluation preprocessing; what the metadata leaves out, from the model's registry entry.

    Files written before ``resize`` was recorded say ``in_memory: true`` when training decoded the
    data into memory at ``input_size`` (CIFAR, digits): their evaluation resize is that size.
    """
    if meta.get("in_memory") and meta.get("resize", meta.get("eval_resize")) is None:
        meta = {**meta, "resize": meta.get("input_size")}
    entry = get_entry(meta["model"]) if meta.get("model") else None
    default = Preprocessing(*entry.eval_sizes()) if entry is not None else Preprocessing()
    return Preprocessing.from_metadata(meta, default)


def effective_options(model: nn.Module) -> dict[str, Any]:
    """Every build option of ``model``: the ones it was built with plus its builder's defaults."""

    name = getattr(model, "model_name", None)
    if name is None:
        return {}
    params = inspect.signature(get_entry(name).builder).parameters
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    opts = {
        k: p.default
        for k, p in params.items()
        if k != "num_classes" and p.kind in named and p.default is not inspect.Parameter.empty
    }
    opts.update(getattr(model, "build_options", {}))
    return opts


def check_compatible(model: nn.Module, meta: dict[str, Any], path: str | Path) -> None:
    """Refuse a checkpoint saved from another network or under other options (e.g. the layout).

    Weights of the stride-in-1×1 ("caffe") and stride-in-3×3 ("torchvision") layouts have the same
    shapes, so only the metadata can tell them apart (PAPER.md, "Trap").
    """
    name = getattr(model, "model_name", None)
    saved = meta.get("model")
    if name is not None and saved is not None and saved != name:
        raise ValueError(
            f"checkpoint {path} holds {saved}, not {name}; use create_model({saved!r}, ...)"
        )
    ours = effective_options(model)
    diffs = []
    for key, value in (meta.get("options") or {}).items():
        if key in FREE_OPTIONS or key not in ours:
            continue
        mine = ours[key]
        if _norm(mine) != _norm(value):
            diffs.append(f"{key}={value!r} in the checkpoint but {key}={mine!r} in the model")
    if diffs:
        raise ValueError(
            f"checkpoint {path} was saved under other options: {'; '.join(diffs)}. The weights may "
            "fit by shape but compute a different function; build the model with the checkpoint's "
            f"options (senet.create_model({saved or name!r}, checkpoint=...) reads them from the file)"
        )


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def normalize_state(
    model: nn.Module, state: dict[str, torch.Tensor], meta: dict[str, Any], path: str | Path
) -> dict[str, torch.Tensor]:
    """Map a metadata-less checkpoint in the original release's key names onto ``model`` by name.

    Such weights need the stride-in-1×1 layout; loading them into another is refused.
    """

    state = strip_prefix(state)
    if meta.get("model") or not looks_original(list(state)):
        return state
    conv = convert_state_dict(state, "original")
    check_compatible(model, {"options": conv.options}, f"{path} (original-release key names)")
    return conv.state


def load_state(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    path: str | Path,
    strict: bool = True,
) -> dict[str, Any]:
    """Load ``state`` into ``model`` after checking names, shapes and (from ``meta``) options."""

    check_compatible(model, meta, path)
    own = model.state_dict()
    state = dict(state)
    fill_batch_counters(state, own)
    problems = mismatch_report(own, state)
    if strict and problems:
        name = meta.get("model", "?")
        hint = ""
        if "fc.weight: checkpoint" in problems:
            hint = (
                "; to change the number of classes, load with the checkpoint's num_classes and "
                "call model.reset_classifier(n)"
            )
        raise ValueError(
            f"checkpoint {path} (model {name}) does not fit {getattr(model, 'model_name', 'this model')}: "
            + problems
            + hint
        )
    model.load_state_dict(state, strict=strict)
    return meta


def mismatch_report(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """Missing keys, unexpected keys and shape mismatches by name ('' when ``state`` fits)."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    parts = []
    if missing:
        parts.append(f"missing keys {_few(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {_few(unexpected)}")
    if wrong:
        parts.append(
            "shape mismatches "
            + _few(
                [
                    f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in wrong
                ]
            )
        )
    return "; ".join(parts)


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> dict[str, Any]:
    """Load ``path`` into ``model``; mismatches are reported by name. Returns the metadata.

    A senet checkpoint's metadata must agree with the model (name, layout and other options); a
    raw state dict in the original release's key names is mapped by name and needs
    ``layout="caffe"``; other raw state dicts must match the model's keys.
    """
    state, meta = read_weights(path)
    state = normalize_state(model, state, meta, path)
    return load_state(model, state, meta, path, strict)


def prepare_checkpoint(
    name: str, path: str | Path, num_classes: int | None, options: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, Any], int | None, dict[str, Any]]:
    """Read ``path`` once and work out how to build ``name`` for it.

    Returns (state in senet keys, metadata, num_classes, options). Options and num_classes come
    from the metadata unless given; a raw state dict without senet metadata is read as its key
    names say (``senet.interop.convert.convert_state_dict(source="auto")``: original-release names
    → ``layout="caffe"``, other names → timm/torchvision's ``layout="torchvision"``), since senet's
    own files always carry metadata. Explicit options win and are then checked against the file.
    """

    state, meta = read_weights(path)
    if meta.get("model"):
        if meta["model"] != name:
            raise ValueError(
                f"checkpoint {path} holds {meta['model']}, not {name}; "
                f"use create_model({meta['model']!r}, checkpoint=...)"
            )
        merged = {**(meta.get("options") or {}), **options}
        n = meta.get("num_classes") if num_classes is None else num_classes
        return state, meta, n, merged
    conv = convert_for_model(state, name, "auto")
    merged = {**conv.options, **options}
    n = conv.num_classes if num_classes is None else num_classes
    if conv.source == "original":
        # the release's key names fix the layout: any other loads by shape and computes another
        # function, so load_state's check refuses an explicit layout="torchvision"
        implied = conv.options
    else:  # timm/torchvision names fit either layout: the caller's explicit choices stand
        implied = {k: v for k, v in conv.options.items() if k not in options}
    meta = {"options": implied, "source": {"format": conv.source, "file": Path(path).name}}
    return conv.state, meta, n, merged


def _few(items: list[str], n: int = 5) -> str:
    more = f" … (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def build_from_checkpoint(
    name: str, path: str | Path, num_classes: int | None = None, **options: Any
) -> nn.Module:
    """Build ``name`` for checkpoint ``path`` (options and num_classes from the file unless given)
    and load its weights; the metadata is kept as ``model.checkpoint_metadata``."""
    state, meta, n, merged = prepare_checkpoint(name, path, num_classes, options)
    model = build_model(name, num_classes=n, **merged)
    load_state(model, state, meta, path)
    model.checkpoint_metadata = meta  # type: ignore[assignment]
    return model


def load_model(path: str | Path, **overrides: Any) -> nn.Module:
    """Rebuild the model a checkpoint describes (its metadata) and load its weights."""
    meta = read_metadata(path) if Path(path).suffix == ".safetensors" else read_weights(path)[1]
    if "model" not in meta:
        raise ValueError(
            f"checkpoint {path} has no senet metadata; build the model yourself with "
            "senet.create_model(NAME, checkpoint=path), or convert it with `senet convert`"
        )
    return build_from_checkpoint(meta["model"], path, **overrides)


def convert_file(
    src: str | Path,
    dst: str | Path,
    model: str,
    source: str = "auto",
    num_classes: int | None = None,
    classes: list[str] | None = None,
) -> ConvertReport:
    """Convert checkpoint ``src`` (.pth/.pt read with weights_only, or .safetensors) for ``model``.

    Keys are mapped by name (``convert_state_dict``) and checked against ``model`` built with the
    source's options; any missing/unexpected key or shape mismatch raises a ValueError naming
    them, and nothing is written. ``dst`` gets senet's safetensors format with metadata (model,
    options, num_classes, mean/std, input size, source file and its sha256).
    """
    src, dst = Path(src), Path(dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"output {dst} must end in .safetensors (senet's weights format)")
    if dst.resolve() == src.resolve():
        raise ValueError(f"output {dst} is the input file; choose another path")
    if source != "auto" and source not in SOURCES:
        raise ValueError(
            f"--from {source!r} is not supported; choose one of auto, {', '.join(SOURCES)}"
        )
    entry = get_entry(model)
    state, meta = read_weights(src)
    if meta.get("model"):  # already senet's format (e.g. a .pt with metadata): re-save it
        if meta["model"] != model:
            raise ValueError(f"{src} holds senet model {meta['model']}, not {model}")
        conv = Conversion(
            strip_prefix(state), "senet", dict(meta.get("options") or {}), meta.get("num_classes")
        )
    else:
        try:
            conv = convert_for_model(state, model, source)
        except ValueError as err:
            raise ValueError(f"{src}: {err}") from err
    n = num_classes if num_classes is not None else conv.num_classes or entry.num_classes
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        target = build_model(model, num_classes=n, **conv.options)
    expected = target.state_dict()
    new_state = dict(conv.state)
    filled = fill_batch_counters(
        new_state, {k: torch.zeros((), dtype=torch.long) for k in expected}
    )
    problems = mismatch_report(expected, new_state)
    if problems:
        raise ValueError(
            f"{src} ({conv.source} layout) does not fit {model} (num_classes={n}, options "
            f"{conv.options}): {problems}. Check --model and --from; nothing was written"
        )
    if classes is not None and len(classes) != n:
        raise ValueError(
            f"{len(classes)} class names given for a {n}-class model; give exactly {n}"
        )
    # the evaluation transform, resolved (resize in pixels): the file's own, else the paper's
    # (shorter side input_size / 0.875, centre crop, ImageNet mean/std) at the model's input size
    prep = preprocessing_of({**meta, "model": model})
    out_meta: dict[str, Any] = {
        "model": model,
        "options": conv.options,
        "num_classes": n,
        **prep.to_metadata(),
        "source": {"format": conv.source, "file": src.name, "sha256": _sha256(src)},
    }
    if classes is not None or meta.get("classes"):
        out_meta["classes"] = list(classes if classes is not None else meta["classes"])
    save_state_dict(new_state, out_meta, dst)
    return ConvertReport(
        dst, model, conv.source, conv.options, n, len(new_state), conv.renamed, len(filled)
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
