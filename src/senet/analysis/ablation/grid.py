"""What an ablation grid is: its variants (rows of a Sec. 6 table) × seeds, and each run's config.

A grid is the base SE network with every combination of the ``vary`` options (``reduction``,
``gate``, ``squeeze``, ``integration``, ``se_stages``, ``se_bias``, ...: ``SE_OPTIONS``),
optionally plus the plain baseline and NoSqueeze (``squeeze="none"``, Table 16), each trained with
every seed. A run is an ordinary ``senet.train`` run in ``out/<variant>__s<seed>/``.
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from senet.models.registry import SE_OPTIONS, build_model, get_entry
from senet.train.recipes import RECIPES, choose_recipe
from senet.utils.options import parse_value as parse_scalar


@dataclass(frozen=True)
class Variant:
    """One row of an ablation table: a network name and its options."""

    name: str  # "reduction=4,gate=relu", "baseline", "nosqueeze"
    model: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def slug(self) -> str:
        """File-system-safe form of ``name`` (``reduction-4_gate-relu``)."""
        s = self.name.replace("=", "-").replace(",", "_").replace("+", "p")
        return re.sub(r"[^A-Za-z0-9._-]", "", s) or "variant"


@dataclass(frozen=True)
class Run:
    """One training run of the grid: a variant with one seed."""

    variant: Variant
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.variant.slug}__s{self.seed}"


def parse_value(text: str) -> Any:
    """One ``--vary`` value: as every command reads values (``senet.utils.options.parse_value``),
    with ``+`` joining a tuple (``1+2`` → (1, 2)), since commas separate the values."""
    if "+" in text:
        return tuple(parse_value(p) for p in text.split("+"))
    return parse_scalar(text)


def parse_vary(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["reduction=4,16", "gate=sigmoid,relu"]`` → ``{"reduction": [4, 16], "gate": [...]}``."""
    vary: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ValueError(
                f"--vary {item!r} must look like KEY=V1,V2 (e.g. reduction=4,16; se_stages=1,2,1+2+3)"
            )
        if key in vary:
            raise ValueError(f"--vary names {key!r} twice; give all its values in one --vary")
        vary[key] = [parse_value(v) for v in values.split(",") if v.strip()]
    return vary


def format_value(v: Any) -> str:
    """The inverse of ``parse_value`` for a table cell or a variant name (``(1, 2)`` → ``1+2``)."""
    if isinstance(v, tuple | list):
        return "+".join(format_value(x) for x in v)
    return str(v).lower() if isinstance(v, bool) else str(v)


def plain_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without the SE ones: what a plain baseline shares with its SE network."""
    return {k: v for k, v in options.items() if k not in SE_OPTIONS}


def default_recipe(model: str, dataset: str | None = None) -> tuple[str, str]:
    """The recipe an ablation grid of ``model`` trains with when none is named, and why.

    ImageNet-style networks (inputs > 64 px) on image folders (or no dataset given): ``ablation``,
    the paper's Sec. 6 protocol (plateau schedule, three drops, label smoothing, SE FC layers
    without biases). Other networks and data: the recipe ``senet train`` would choose
    (``choose_recipe``; a CIFAR network gets its CIFAR recipe).
    """
    if get_entry(model).input_size > 64 and dataset in (None, "imagefolder"):
        return "ablation", f"the paper's Sec. 6 protocol for an ImageNet-style network ({model})"
    return choose_recipe(None, model, dataset)


def build_variants(
    model: str,
    vary: Mapping[str, Sequence[Any]],
    baseline: bool = False,
    nosqueeze: bool = False,
    base_options: Mapping[str, Any] | None = None,
    one_at_a_time: bool = False,
) -> list[Variant]:
    """The rows of the grid; every option is checked by building each variant once (no training).

    By default the rows are the product of the ``vary`` values. ``one_at_a_time`` instead varies
    one option at a time around the network's defaults, as each of the paper's Tables 10–16 does:
    a row ``se`` (the defaults, with ``base_options``) and a row per non-default value.
    """
    entry = get_entry(model)
    if not entry.has_se:
        raise ValueError(
            f"{model} has no SE blocks; give the SE network (e.g. cifar_se_resnet20) — "
            "--baseline adds its plain counterpart"
        )
    base = dict(base_options or {})
    variants = []
    keys = list(vary)
    if one_at_a_time:
        params = inspect.signature(entry.builder).parameters
        defaults = {
            k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty
        }
        defaults.update(base)
        variants.append(Variant("se", model, ()))
        for key in keys:
            for value in vary[key]:
                if key in defaults and format_value(value) == format_value(defaults[key]):
                    continue  # the defaults' row already trains it
                variants.append(Variant(f"{key}={format_value(value)}", model, ((key, value),)))
    for combo in (
        () if one_at_a_time else itertools.product(*(vary[k] for k in keys)) if keys else [()]
    ):
        opts = dict(zip(keys, combo))
        name = ",".join(f"{k}={format_value(v)}" for k, v in opts.items()) or "se"
        variants.append(Variant(name, model, tuple(opts.items())))
    if nosqueeze and not any(dict(v.options).get("squeeze") == "none" for v in variants):
        variants.append(Variant("nosqueeze", model, (("squeeze", "none"),)))
    if baseline:
        if entry.baseline is None:
            raise ValueError(f"{model} has no registered plain baseline; drop --baseline")
        variants.append(Variant("baseline", entry.baseline, ()))
    for v in variants:  # fail before any training on a bad option
        se_base = base if get_entry(v.model).has_se else plain_options(base)
        build_model(v.model, **{**se_base, **dict(v.options)})
    return variants


@dataclass
class AblationGrid:
    """Variants × seeds, the recipe they share and where the runs go."""

    variants: list[Variant]
    seeds: Sequence[int]
    out: Path
    recipe: str = "cifar"
    #: TrainConfig options shared by all runs
    overrides: dict[str, Any] = field(default_factory=dict)

    def runs(self) -> list[Run]:
        """Seed-major order: a first complete pass over the variants comes before the second seed."""
        return [Run(v, s) for s in self.seeds for v in self.variants]

    def run_dir(self, run: Run) -> Path:
        return Path(self.out) / run.run_id

    def run_config(self, run: Run) -> dict[str, Any]:
        """The ``get_recipe`` overrides of one run (model, options, seed, out, resume)."""
        recipe_opts = dict(RECIPES.get(self.recipe, {}).get("model_options") or {})
        base = {**recipe_opts, **dict(self.overrides.get("model_options") or {})}
        if not get_entry(run.variant.model).has_se:
            base = plain_options(base)
        return {
            **self.overrides,
            "model": run.variant.model,
            "model_options": {**base, **dict(run.variant.options)},
            "seed": run.seed,
            "out": str(self.run_dir(run)),
            "resume": True,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "overrides": self.overrides,
            "seeds": list(self.seeds),
            "variants": [
                {"name": v.name, "model": v.model, "options": dict(v.options)}
                for v in self.variants
            ],
        }
