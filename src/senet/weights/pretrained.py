"""Build a network from pretrained weights to start from: a registered tag or a local file.

``build_pretrained(name, pretrained, num_classes, in_chans, options)`` reads the weights, maps them
by name onto senet's keys, builds the network under the options the weights imply (the layout
above all) and adapts them to a new task, as timm and torchvision users expect:

- another ``num_classes``: every tensor but the classifier's is loaded; the classifier keeps the
  network's own initialisation (it is listed in ``model.pretrained_cfg["reinitialised"]``);
  ``num_classes=0`` removes it (``reset_classifier(0)``, features only);
- another ``in_chans``: the stem convolution is adapted as timm's ``adapt_input_conv`` does
  (1 channel: the sum over the RGB filters; C > 3: the RGB filters repeated and scaled by 3 / C),
  and the evaluation mean/std follow (their average for 1 channel, repeated for C > 3).

The result carries ``model.checkpoint_metadata`` (model, options, num_classes, the weights'
``Preprocessing``, class names when the classifier was kept, where the weights came from), the
same keys a senet weights file holds, so ``senet eval``/``predict``/``export`` read it unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.data.preprocessing import Preprocessing
from senet.interop.convert import convert_for_model
from senet.interop.weights_file import (
    effective_options,
    load_state,
    prepare_checkpoint,
    preprocessing_of,
    read_weights,
    weights_path,
)
from senet.models.registry import build_model, list_models
from senet.weights.download import fetch
from senet.weights.registry import WeightsEntry, get_weights, weights_tags

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


@dataclass
class PretrainedWeights:
    """Weights in senet's key names and what they say about the network they belong to."""

    state: dict[str, torch.Tensor]
    options: dict[str, Any]  # build options the weights need (e.g. layout)
    implied: dict[str, Any]  # the subset an explicit user option may not contradict
    num_classes: int
    meta: dict[str, Any]  # the file's senet metadata ({} for other formats)
    preprocessing: Preprocessing
    origin: dict[str, Any]  # where they came from (entry name, URL, hash, file)


def resolve(name: str, pretrained: bool | str | Path) -> WeightsEntry | Path:
    """What ``pretrained`` names for model ``name``: a registered entry or a local file.

    ``True`` = the model's default tag; a string is a tag (``"original"``), ``"name.tag"``, or a
    file path (any format ``senet convert`` reads).
    """
    if pretrained is True:
        return get_weights(name)
    if isinstance(pretrained, Path):
        return _local(pretrained)
    if not isinstance(pretrained, str) or isinstance(pretrained, bool):
        hint = f" (did you mean num_classes={pretrained}?)" if isinstance(pretrained, int) else ""
        raise ValueError(
            f"pretrained={pretrained!r} must be True, a weights tag or a file path{hint}"
        )
    text = pretrained.strip()
    tags = weights_tags(name)
    if text in tags:
        return get_weights(name, text)
    model, dot, tag = text.partition(".")
    if dot and model in list_models() and tag in weights_tags(model):
        if model != name:
            raise ValueError(
                f"weights {text} belong to {model}, not {name}; use create_model({model!r}, "
                f"pretrained={tag!r}) or one of {name}'s tags ({', '.join(tags) or 'none'})"
            )
        return get_weights(name, tag)
    path = Path(text).expanduser()
    if path.is_file() or "/" in text or "\\" in text or path.suffix in WEIGHT_SUFFIXES:
        return _local(path)
    return get_weights(name, text)  # raises: unknown tag, with the close ones


def _local(path: Path) -> Path:
    try:
        return weights_path(path, "weights file")
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{err}, or a registered tag (`senet weights` lists them)"
        ) from None


def read_pretrained(
    name: str, source: WeightsEntry | Path, options: dict[str, Any], progress: bool = True
) -> PretrainedWeights:
    """Read (downloading if needed) and convert the weights ``source`` for model ``name``."""
    if isinstance(source, WeightsEntry):
        entry = source
        path = fetch(entry, progress)
        origin = {
            "weights": entry.name,
            "url": entry.url,
            "sha256": entry.sha256,
            "source": entry.source,
            "file": path.name,
        }
        if (
            entry.source == "senet"
        ):  # senet's own file: its metadata describes it, transform included
            state, meta, n, _ = prepare_checkpoint(name, path, None, {})
            opts = {k: v for k, v in (meta.get("options") or {}).items() if k != "in_chans"}
            own = "input_size" in meta or "mean" in meta
            prep = preprocessing_of({**meta, "model": name}) if own else entry.preprocessing
            return PretrainedWeights(state, opts, opts, n or entry.num_classes, meta, prep, origin)
        state, meta = read_weights(path)
        try:
            conv = convert_for_model(state, name, entry.source)
        except ValueError as err:
            raise ValueError(f"weights {entry.name} ({path}): {err}") from err
        n = conv.num_classes or entry.num_classes
        # a registered source fixes the layout: loading it under another computes another function
        return PretrainedWeights(
            conv.state, conv.options, conv.options, n, {}, entry.preprocessing, origin
        )
    wanted = {k: v for k, v in options.items() if k != "in_chans"}
    state, meta, n, merged = prepare_checkpoint(name, source, None, wanted)
    implied = {k: v for k, v in (meta.get("options") or {}).items() if k != "in_chans"}
    opts = {k: v for k, v in merged.items() if k not in wanted and k != "in_chans"}
    prep = preprocessing_of({**meta, "model": name})
    src = meta.get("source")  # convert writes {"format": ...}; senet train a sentence
    fmt = src.get("format", "senet") if isinstance(src, dict) else "senet"
    origin = {"file": str(source), "source": fmt}
    return PretrainedWeights(state, opts, implied, int(n or 0), meta, prep, origin)


def stem_conv_key(state: dict[str, torch.Tensor]) -> str | None:
    """The first convolution weight of a state dict (the one that sees the input image)."""
    return next((k for k, v in state.items() if k.endswith("weight") and v.ndim == 4), None)


def adapt_input_conv(in_chans: int, weight: torch.Tensor) -> torch.Tensor:
    """A stem convolution's weight for ``in_chans`` input channels (timm's ``adapt_input_conv``).

    1 channel: the sum over the input channels (a grey image is R = G = B); C channels from 3:
    the RGB filters repeated to C and scaled by 3 / C, so the response to a constant image keeps
    its size.
    """
    if in_chans < 1:
        raise ValueError(f"in_chans {in_chans} must be ≥ 1")
    dtype = weight.dtype
    w = weight.float()
    out_ch, have, kh, kw = w.shape
    if in_chans == have:
        return weight
    if in_chans == 1:
        if have > 3 and have % 3 == 0:  # stacked RGB groups: sum each group's RGB
            w = w.reshape(out_ch, have // 3, 3, kh, kw).sum(dim=2)
        else:
            w = w.sum(dim=1, keepdim=True)
    elif have == 3:
        w = w.repeat(1, math.ceil(in_chans / 3), 1, 1)[:, :in_chans] * (3 / in_chans)
    else:
        raise ValueError(
            f"cannot adapt a {have}-channel stem convolution to {in_chans} channels "
            "(only 3 → C and C → 1 are defined)"
        )
    return w.to(dtype)


def adapt_preprocessing(prep: Preprocessing, in_chans: int) -> Preprocessing:
    """``prep`` for ``in_chans`` channels, following ``adapt_input_conv``'s channel mapping."""
    if in_chans == prep.in_chans:
        return prep
    if in_chans == 1:
        mean = (round(sum(prep.mean) / len(prep.mean), 6),)
        std = (round(sum(prep.std) / len(prep.std), 6),)
    else:
        reps = math.ceil(in_chans / len(prep.mean))
        mean, std = (prep.mean * reps)[:in_chans], (prep.std * reps)[:in_chans]
    return replace(prep, in_chans=in_chans, mean=mean, std=std)


def classifier_prefix(model: nn.Module) -> str | None:
    """The state-dict prefix of ``model``'s classifier (``"fc."``, ``"classifier.6."``)."""
    get = getattr(model, "get_classifier", None)
    if get is None:
        return None
    head = get()
    for mod_name, module in model.named_modules():
        if module is head and mod_name:
            return mod_name + "."
    return None


def build_pretrained(
    name: str,
    pretrained: bool | str | Path,
    num_classes: int | None = None,
    in_chans: int | None = None,
    options: dict[str, Any] | None = None,
    progress: bool = True,
) -> nn.Module:
    """Network ``name`` starting from the weights ``pretrained`` names (see the module docstring)."""
    options = dict(options or {})
    source = resolve(name, pretrained)
    w = read_pretrained(name, source, options, progress)
    stem = stem_conv_key(w.state)
    have_chans = int(w.state[stem].shape[1]) if stem is not None else w.preprocessing.in_chans
    chans = in_chans if in_chans is not None else int(options.pop("in_chans", have_chans))
    options.pop("in_chans", None)
    for key, value in options.items():  # an explicit option may not contradict the weights
        if key in w.implied and _norm(w.implied[key]) != _norm(value):
            raise ValueError(
                f"{_describe(source)} need {key}={w.implied[key]!r} but {key}={value!r} was asked; "
                f"they were trained with {key}={w.implied[key]!r} and compute another function "
                f"under {key}={value!r} (drop the option)"
            )
    merged = {**w.options, **options, "in_chans": chans}
    head = w.num_classes if num_classes in (None, 0) else num_classes
    model = build_model(name, num_classes=head, **merged)
    state = dict(w.state)
    reinit: list[str] = []
    adapted: list[str] = []
    prefix = classifier_prefix(model)
    if head != w.num_classes and prefix is not None:
        reinit = [k for k in model.state_dict() if k.startswith(prefix)]
        state = {k: v for k, v in state.items() if not k.startswith(prefix)}
        state.update({k: model.state_dict()[k] for k in reinit})
    if stem is not None and chans != have_chans:
        state[stem] = adapt_input_conv(chans, state[stem])
        adapted.append(stem)
    check_meta = {
        "model": name,
        "options": {k: v for k, v in w.implied.items() if k != "in_chans"},
    }
    load_state(model, state, check_meta, _describe(source))
    if num_classes == 0:
        model.reset_classifier(0)
        reinit = []
    prep = adapt_preprocessing(w.preprocessing, chans)
    meta: dict[str, Any] = {
        "model": name,
        "options": effective_options(model),
        "num_classes": model.num_classes,
        **prep.to_metadata(),
    }
    if not reinit and num_classes != 0 and w.meta.get("classes"):
        meta["classes"] = list(w.meta["classes"])
    meta["source"] = {**w.origin, "reinitialised": reinit, "adapted": adapted}
    model.checkpoint_metadata = meta  # type: ignore[assignment]
    model.pretrained_cfg = {  # type: ignore[assignment]
        **w.origin,
        "preprocessing": prep,
        "reinitialised": reinit,
        "adapted": adapted,
    }
    return model


def _describe(source: WeightsEntry | Path) -> str:
    return (
        f"weights {source.name}" if isinstance(source, WeightsEntry) else f"weights file {source}"
    )


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value
