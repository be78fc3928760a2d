"""Pretrained weights by name: one ``WeightsEntry`` per (model, tag), and ``register`` for your own.

An entry says where a weights file lives (``url``, optional ``mirrors`` holding copies of the same
tensors), how to check it (``sha256``: the full digest, or a prefix of at least 8 hex digits as in
``name-<sha256 prefix>.pth`` release names; ``None`` = unknown, checked by format only), how its
keys map onto senet's (``source``: ``original``/``timm``/``torchvision``/``senet``), the evaluation
transform its accuracy was measured with (a ``Preprocessing``) and the reported top-1.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from senet.data.preprocessing import Preprocessing
from senet.interop.convert import SOURCES
from senet.models.registry import get_entry
from senet.utils.names import did_you_mean

#: key layouts a registered file may have (``senet`` = senet's own safetensors with metadata)
WEIGHT_SOURCES: tuple[str, ...] = (*SOURCES, "senet")
_HEX = re.compile(r"^[0-9a-f]{8,64}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
_URL_SCHEMES = ("http", "https", "file")


@dataclass(frozen=True)
class Mirror:
    """Another copy of an entry's weights: its own URL and file hash."""

    url: str
    sha256: str | None = None


@dataclass(frozen=True)
class WeightsEntry:
    """One set of pretrained weights of one registered model (see the module docstring)."""

    model: str
    tag: str
    url: str
    sha256: str | None
    source: str
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    top1: float | None = None  # reported ImageNet top-1 accuracy (%) under ``preprocessing``
    num_classes: int = 1000
    mirrors: tuple[Mirror, ...] = ()
    reference: str = ""  # where the URL, hash and accuracy were taken from
    description: str = ""

    @property
    def name(self) -> str:
        """``model.tag``, the name ``create_model(..., pretrained=...)`` and the CLI accept."""
        return f"{self.model}.{self.tag}"

    @property
    def hash_kind(self) -> str:
        """``sha256`` (full digest), ``sha256-prefix`` (a release name's prefix) or ``none``."""
        if self.sha256 is None:
            return "none"
        return "sha256" if len(self.sha256) == 64 else "sha256-prefix"

    @property
    def copies(self) -> tuple[Mirror, ...]:
        """Every place the weights can be downloaded from, in the order they are tried."""
        return (Mirror(self.url, self.sha256), *self.mirrors)


_WEIGHTS: dict[str, dict[str, WeightsEntry]] = {}  # model → tag → entry
_DEFAULT: dict[str, str] = {}  # model → the tag ``pretrained=True`` means


def _check_hash(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    low = value.strip().lower()
    if not _HEX.match(low):
        raise ValueError(
            f"{what}: sha256 {value!r} must be 8 to 64 hex digits (the full digest, or the prefix "
            "in a release name such as resnet50-0676ba61.pth), or None when unknown"
        )
    return low


def _check_url(url: str, what: str) -> str:
    scheme = urlparse(url).scheme
    if scheme not in _URL_SCHEMES:
        raise ValueError(
            f"{what}: url {url!r} must start with http://, https:// or file:// "
            "(a local file: pass its path as pretrained=PATH instead)"
        )
    return url


def register(
    model: str,
    tag: str,
    *,
    url: str,
    sha256: str | None,
    source: str,
    top1: float | None = None,
    num_classes: int = 1000,
    mirrors: tuple[Mirror | tuple[str, str | None] | str, ...] = (),
    default: bool = False,
    overwrite: bool = False,
    reference: str = "",
    description: str = "",
    preprocessing: Preprocessing | None = None,
    **transform: Any,
) -> WeightsEntry:
    """Register weights for ``model`` under ``tag`` (e.g. weights hosted inside a company).

    ``transform`` holds ``Preprocessing`` fields (``input_size``, ``resize`` or ``crop_pct``,
    ``interpolation``, ``mean``, ``std``, ``in_chans``); the default is the paper's evaluation
    (224 crop of a 256 resize, bilinear, ImageNet mean/std); a ``source="senet"`` file's own
    metadata wins over it when it records a transform. ``sha256=None`` registers a file whose
    hash is unknown (it is then checked by format only). The first entry of a model, or one with
    ``default=True``, is what ``create_model(model, pretrained=True)`` loads.
    """
    get_entry(model)  # an unknown model raises with the closest names
    what = f"weights {model}.{tag}"
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise ValueError(
            f"{what}: tag must be letters, digits, '_' or '-' (e.g. 'in1k', 'company_v2')"
        )
    if source not in WEIGHT_SOURCES:
        raise ValueError(
            f"{what}: source {source!r} is not supported; choose one of {', '.join(WEIGHT_SOURCES)}"
        )
    if tag in _WEIGHTS.get(model, {}) and not overwrite:
        raise ValueError(f"{what} is already registered; pass overwrite=True to replace it")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{what}: num_classes {num_classes!r} must be a positive integer")
    if preprocessing is not None and transform:
        raise ValueError(f"{what}: give preprocessing= or transform keywords, not both")
    prep = preprocessing if preprocessing is not None else Preprocessing(**transform)
    copies = []
    for m in mirrors:
        mirror = Mirror(m) if isinstance(m, str) else m if isinstance(m, Mirror) else Mirror(*m)
        copies.append(Mirror(_check_url(mirror.url, what), _check_hash(mirror.sha256, what)))
    entry = WeightsEntry(
        model=model,
        tag=tag,
        url=_check_url(url, what),
        sha256=_check_hash(sha256, what),
        source=source,
        preprocessing=prep,
        top1=top1,
        num_classes=num_classes,
        mirrors=tuple(copies),
        reference=reference,
        description=description,
    )
    _WEIGHTS.setdefault(model, {})[tag] = entry
    if default or model not in _DEFAULT:
        _DEFAULT[model] = tag
    return entry


def unregister(model: str, tag: str) -> None:
    """Remove ``model.tag`` (tests; replacing an entry is ``register(..., overwrite=True)``)."""
    tags = _WEIGHTS.get(model, {})
    if tag not in tags:
        raise ValueError(f"no weights {model}.{tag} are registered")
    del tags[tag]
    if _DEFAULT.get(model) == tag:
        if tags:
            _DEFAULT[model] = next(iter(tags))
        else:
            del _DEFAULT[model]
            del _WEIGHTS[model]


def list_weights(pattern: str | None = None) -> list[WeightsEntry]:
    """Registered weights, sorted by model then tag (the default tag first).

    ``pattern`` is a shell glob matched against ``model.tag`` and the model name alone
    (``"se_*"``, ``"*resnext*"``, ``"*.original"``).
    """
    out = []
    for model in sorted(_WEIGHTS):
        tags = sorted(_WEIGHTS[model], key=lambda t: (t != _DEFAULT[model], t))
        for tag in tags:
            e = _WEIGHTS[model][tag]
            if (
                pattern is None
                or fnmatch.fnmatchcase(e.name, pattern)
                or fnmatch.fnmatchcase(model, pattern)
            ):
                out.append(e)
    return out


def default_tag(model: str) -> str | None:
    """The tag ``pretrained=True`` loads for ``model`` (None: no weights registered)."""
    return _DEFAULT.get(model)


def weights_tags(model: str) -> list[str]:
    """The registered tags of ``model`` (default first)."""
    return [e.tag for e in list_weights() if e.model == model]


def get_weights(model: str, tag: str | None = None) -> WeightsEntry:
    """The entry ``model.tag`` (``tag=None``: the default); unknown names suggest close ones."""
    get_entry(model)
    tags = _WEIGHTS.get(model, {})
    if not tags:
        raise ValueError(
            f"no pretrained weights are registered for {model}; train it (senet train) or load a "
            f"file with pretrained=PATH; `senet weights` lists the models that have some"
        )
    tag = tag or _DEFAULT[model]
    if tag not in tags:
        hint = did_you_mean(tag, list(tags), cutoff=0.4)
        raise ValueError(
            f"{model} has no weights tagged {tag!r}; {hint}its tags: {', '.join(weights_tags(model))}"
        )
    return tags[tag]


def find_weights(name: str) -> WeightsEntry | None:
    """The entry named ``model.tag`` (or a model name alone: its default), else None."""
    model, _, tag = name.partition(".")
    if model in _WEIGHTS and (not tag or tag in _WEIGHTS[model]):
        return _WEIGHTS[model][tag or _DEFAULT[model]]
    return None
