"""Model names → builders: ``create_model``, ``list_models`` and each name's paper reference.

The families register themselves on import; importing this module imports its package
``senet.models`` first, which imports every family, so the registry is always complete.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

#: options every SE network accepts, mapped to the ``SEConfig`` field they set
SE_OPTIONS: dict[str, str] = {
    "reduction": "reduction",
    "squeeze": "squeeze",
    "gate": "gate",
    "se_bias": "bias",
    "se_divisor": "divisor",
    "se_min_channels": "min_channels",
    "integration": "integration",
    "se_stages": "",
}


@dataclass(frozen=True)
class PaperRef:
    """What the paper (or the reference it names) reports for a network."""

    gmacs: float | None = None  # the paper's "GFLOPs" (multiply-accumulates) at ``input_size``
    params_m: float | None = None  # millions, as printed in the paper
    top1_err: float | None = None  # ImageNet/CIFAR single-crop error, %
    top5_err: float | None = None
    source: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """A registered network: how to build it and what it is compared with."""

    name: str
    builder: Callable[..., nn.Module]
    family: str
    has_se: bool
    baseline: str | None = None  # the plain network an SE network is compared with
    input_size: int = 224
    min_input_size: int = 32  # smallest input the architecture accepts (tests use it)
    num_classes: int = 1000
    paper: PaperRef = field(default_factory=PaperRef)
    description: str = ""

    @property
    def options(self) -> tuple[str, ...]:
        params = inspect.signature(self.builder).parameters
        return tuple(p for p in params if p not in ("num_classes",))


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model name {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def list_models(pattern: str | None = None, *, se: bool | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` is a shell glob (``"se_*"``, ``"*resnext*"``)."""
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if se is not None:
        names = [n for n in names if _REGISTRY[n].has_se == se]
    return names


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name raises with the closest valid names."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown model {name!r}{hint} (senet.list_models() or `senet models` lists all {len(_REGISTRY)})"
    )


def build_model(name: str, num_classes: int | None = None, **options: object) -> nn.Module:
    """Build ``name`` with fresh weights; options are checked against what the model accepts."""
    entry = get_entry(name)
    allowed = entry.options
    unknown = [k for k in options if k not in allowed]
    if unknown:
        key = unknown[0]
        if key in SE_OPTIONS and not entry.has_se:
            se_name = f"se_{name}" if f"se_{name}" in _REGISTRY else "its SE version"
            raise ValueError(
                f"{name} is a plain network without SE blocks, so the SE option {key!r} does not "
                f"apply; use {se_name} (SE networks: senet.list_models(se=True))"
            )
        close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(
            f"{name} has no option {key!r}; {hint}its options are: {', '.join(sorted(allowed))}"
        )
    n = entry.num_classes if num_classes is None else num_classes
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"num_classes={num_classes!r} must be a positive integer")
    model = entry.builder(num_classes=n, **options)
    model.model_name = name  # type: ignore[assignment]
    model.build_options = dict(options)  # type: ignore[assignment]
    return model
