"""Model names → builders: ``create_model``, ``list_models`` and each name's paper reference.

The families register themselves on import; importing this module imports its package
``senet.models`` first, which imports every family, so the registry is always complete.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from senet.layers.se import SEConfig
from senet.utils.names import did_you_mean

#: the public options of an SE network: its SE blocks' (``SEConfig.OPTIONS``) and ``se_stages``
SE_OPTIONS: tuple[str, ...] = (*SEConfig.OPTIONS, "se_stages")
#: the SE options of a family whose SE blocks have one place only (VGG, Inception, mobile nets)
NO_INTEGRATION: tuple[str, ...] = tuple(o for o in SE_OPTIONS if o != "integration")


#: ``ModelEntry`` fields of a CIFAR-10 network: 32×32 images, trained and evaluated without
#: resizing (pad-4 crops, Tables 4–5), 10 classes. ImageNet networks keep the defaults.
CIFAR10_ENTRY: dict[str, Any] = {
    "input_size": 32,
    "eval_input_size": 32,
    "eval_resize": 32,
    "min_input_size": 8,
    "num_classes": 10,
}


@dataclass(frozen=True)
class PaperRef:
    """What the paper (or the reference it names) reports for a network."""

    gmacs: float | None = None  # the paper's "GFLOPs" (multiply-accumulates) at ``input_size``
    params_m: float | None = None  # millions, as printed in the paper
    top1_err: float | None = None  # ImageNet/CIFAR-10 single-crop error, %
    top5_err: float | None = None
    source: str = ""
    cifar100_top1_err: float | None = None  # the same network on CIFAR-100 (Table 5), %


@dataclass(frozen=True)
class ModelEntry:
    """A registered network: how to build it and what it is compared with."""

    name: str
    builder: Callable[..., nn.Module]
    family: str
    has_se: bool
    baseline: str | None = None  # the plain network an SE network is compared with
    #: training crop, and the size the paper's complexity is quoted at
    input_size: int = 224
    #: default evaluation: resize the shorter side to ``eval_resize``, centre-crop ``eval_input_size``
    eval_input_size: int = 224
    eval_resize: int = 256
    #: the paper's alternative evaluation size, where it reports one (SENet-154: 320, Table 8)
    test_input_size: int | None = None
    test_resize: int | None = None
    min_input_size: int = 32  # smallest input the architecture accepts (tests use it)
    num_classes: int = 1000
    paper: PaperRef = field(default_factory=PaperRef)
    description: str = ""

    def __post_init__(self) -> None:
        pairs = [(self.eval_input_size, self.eval_resize), (self.test_input_size, self.test_resize)]
        for crop, resize in pairs:
            if crop is not None and (resize is None or resize < crop):
                raise ValueError(f"{self.name}: resize {resize} must be ≥ the crop {crop}")

    def eval_sizes(self, input_size: int | None = None, test: bool = False) -> tuple[int, int]:
        """(centre crop, shorter side before it) of this network's default evaluation.

        ``test=True``: the paper's alternative size where there is one (else the default).
        ``input_size``: another crop, resized in this network's crop/resize ratio (224 → 256).
        """
        crop, resize = self.eval_input_size, self.eval_resize
        if test and self.test_input_size is not None and self.test_resize is not None:
            crop, resize = self.test_input_size, self.test_resize
        if input_size is None or input_size == crop:
            return crop, resize
        return input_size, round(input_size * resize / crop)

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


def register_pair(
    plain: str,
    se: str,
    build: Callable[..., nn.Module],
    *,
    plain_paper: PaperRef | None = None,
    se_paper: PaperRef | None = None,
    description: str = "",
    se_description: str = "",
    se_options: Sequence[str] = SE_OPTIONS,
    **entry: Any,
) -> tuple[ModelEntry, ModelEntry]:
    """Register a plain network and its SE version, both built by ``build``.

    ``build(num_classes, ..., se=SEConfig | None, se_stages=None)``: its other parameters are the
    family's options. The plain builder passes ``se=None``; the SE builder takes the family's
    options plus ``se_options`` (default: every one in ``SE_OPTIONS``; a family whose blocks have
    no integration points leaves out ``integration``) and turns them into one ``SEConfig``.
    ``entry``: the other ``ModelEntry`` fields both share (family, sizes, num_classes).
    """
    unknown = [o for o in se_options if o not in SE_OPTIONS]
    if unknown:
        raise ValueError(f"register_pair({se!r}): {unknown} are not SE options ({SE_OPTIONS})")
    plain_build, se_build = _pair_builders(build, tuple(se_options))
    return (
        register_model(
            ModelEntry(
                plain,
                plain_build,
                has_se=False,
                paper=plain_paper or PaperRef(),
                description=description,
                **entry,
            )
        ),
        register_model(
            ModelEntry(
                se,
                se_build,
                has_se=True,
                baseline=plain,
                paper=se_paper or PaperRef(),
                description=se_description,
                **entry,
            )
        ),
    )


def _pair_builders(
    build: Callable[..., nn.Module], se_options: tuple[str, ...]
) -> tuple[Callable[..., nn.Module], Callable[..., nn.Module]]:
    """The plain and the SE builder of ``build``, with the signatures ``build_model`` checks."""
    sig = inspect.signature(build)
    family = [p for name, p in sig.parameters.items() if name not in ("se", "se_stages")]
    defaults = {**SEConfig.defaults(), "se_stages": None}
    kw = inspect.Parameter.KEYWORD_ONLY
    hints = {"se_stages": "tuple[int, ...] | None"}  # the CLI reads `se_stages=1` as (1,)
    se_params = [
        inspect.Parameter(
            o, kw, default=defaults[o], annotation=hints.get(o, inspect.Parameter.empty)
        )
        for o in se_options
    ]

    def build_plain(**options: Any) -> nn.Module:
        return build(se=None, se_stages=None, **options)

    def build_se(**options: Any) -> nn.Module:
        se_kw = {k: options.pop(k) for k in list(options) if k in SEConfig.OPTIONS}
        stages = options.pop("se_stages", None)
        return build(se=SEConfig.from_options(**se_kw), se_stages=stages, **options)

    build_plain.__signature__ = sig.replace(parameters=family)  # type: ignore[attr-defined]
    build_se.__signature__ = sig.replace(parameters=family + se_params)  # type: ignore[attr-defined]
    return build_plain, build_se


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
    hint = did_you_mean(name, list(_REGISTRY), n=5, template="; did you mean {}?")
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
        hint = did_you_mean(key, allowed)
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
