"""``senet train`` and ``senet recipes``: the training engine on the command line.

``senet train``'s flags are generated from ``TrainConfig``'s fields (type, ``Literal`` choices,
help and group in the field metadata), so a new option is one new field. A run's config is built
in layers, each overriding the one before: the recipe (``--recipe``, else chosen from the model
and dataset, see ``choose_recipe``) → a saved config (``--config FILE``, or the run's own
``config.json`` with ``--resume``) → the flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from senet.cli._options import (
    HelpFormatter,
    add_dataclass_arguments,
    add_model_options_argument,
    parse_model_options,
)
from senet.train.recipes import (
    GROUPS,
    RECIPES,
    TrainConfig,
    choose_recipe,
    field_type,
    get_recipe,
    recipe_assumed,
    recipe_conditions,
    recipe_description,
)

#: flags of this call only: never inherited from a saved config
PER_CALL = ("resume", "force", "stop_after_epochs")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a network with one of the paper's recipes",
        description="Train a network with a named recipe plus overrides. Options left unset keep "
        "the value of the layer below: flags > --config FILE (or, with --resume, the run's own "
        "config.json) > the recipe (`senet recipes NAME` shows its values) > TrainConfig's "
        "defaults. Without --recipe the recipe follows the model and data: the model's registered "
        "recipe, else the dataset's (imagefolder → imagenet, cifar10/100 → cifar, digits → "
        "digits), else the model's input size (≤ 64 px → cifar, else imagenet); `senet train` "
        "alone trains the digits main job. The effective config is saved as OUT/config.json. "
        "Multi-process: torchrun --nproc_per_node=N -m senet train ...",
        formatter_class=HelpFormatter,
        usage="senet train [--recipe NAME | --config FILE] [--model NAME] [--dataset NAME] "
        "[-o KEY=VALUE ...] [options]",
    )
    g = p.add_argument_group("what to train")
    g.add_argument(
        "--recipe",
        metavar="NAME",
        help=f"named preset: {', '.join(RECIPES)} (default: chosen from --model/--dataset)",
    )
    g.add_argument(
        "--config",
        metavar="FILE",
        help="start from a saved config (a run's config.json: re-run it, e.g. with another "
        "--seed and --out); flags override it",
    )
    g.add_argument(
        "--print-config", action="store_true", help="print the effective config and exit"
    )
    groups = add_dataclass_arguments(p, TrainConfig, {n: field_type(n) for n in _names()}, GROUPS)
    add_model_options_argument(groups["model"])
    p.set_defaults(func=_train, model_options=None)

    r = subparsers.add_parser(
        "recipes",
        help="list the training recipes and their settings",
        description="The paper's training recipes as named presets.",
        formatter_class=HelpFormatter,
    )
    r.add_argument("name", nargs="?", help="show one recipe's full effective config")
    r.set_defaults(func=_recipes)


def _names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def _saved_config(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist") from None
    except ValueError as err:
        raise ValueError(f"{what} {path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path} is not a senet training config (a JSON object)")
    TrainConfig.from_dict({k: v for k, v in data.items()})  # unknown keys → clear error
    return {k: v for k, v in data.items() if k not in PER_CALL}


def config_from_args(args: argparse.Namespace, note: Any = None) -> TrainConfig:
    """The ``TrainConfig`` that ``senet train`` arguments describe (see the module docstring).

    ``note`` receives the one-line explanation of which recipe or saved config was the base.
    """
    note = note or (lambda text: None)
    flags = {
        k: v for k, v in vars(args).items() if k in set(_names()) - {"model_options", "recipe"}
    }
    options = parse_model_options(args.model_options)
    given = " + the flags given" if flags or options else ""
    if args.config:
        note(f"config: {args.config}{given}")
        return _on_saved(_saved_config(Path(args.config), "--config"), args, flags, options)
    name, why = choose_recipe(args.recipe, flags.get("model"), flags.get("dataset"))
    config = get_recipe(name, model_options=options, **flags)
    saved = Path(config.out_dir) / "config.json"
    if config.resume and saved.is_file():
        note(f"config: the run's own {saved}{given}")
        return _on_saved(_saved_config(saved, "the run's config"), args, flags, options)
    if not args.recipe:
        note(f"recipe: {name} ({why}; --recipe NAME chooses another)")
    return config


def _on_saved(
    base: dict[str, Any], args: argparse.Namespace, flags: dict[str, Any], options: dict[str, Any]
) -> TrainConfig:
    """A saved config with the given flags and model options on top."""
    if args.recipe and args.recipe != base.get("recipe"):
        raise ValueError(
            f"--recipe {args.recipe} disagrees with the saved config's recipe "
            f"{base.get('recipe')!r}; drop --recipe (the saved config is the base)"
        )
    base_options = dict(base.get("model_options") or {})
    if "model" in flags and flags["model"] != base.get("model"):
        base_options = {k: v for k, v in base_options.items() if k == "in_chans"}
    return TrainConfig.from_dict({**base, **flags, "model_options": {**base_options, **options}})


def _train(args: argparse.Namespace) -> int:
    from senet.train import train

    config = config_from_args(args, note=lambda text: print(text, file=sys.stderr))
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2, sort_keys=True))
        return 0
    result = train(config)
    # a finished run asked to train again did nothing: the one line above says how to extend it
    return {"interrupted": 130, "already_finished": 2}.get(result.get("status", ""), 0)


def _recipes(args: argparse.Namespace) -> int:
    if args.name:
        cfg = get_recipe(args.name)
        print(f"{args.name}: {recipe_description(args.name)}\n")
        print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
        for line in _conditions(args.name):
            print(line)
        assumed = recipe_assumed(args.name)
        if assumed:
            print("\nassumed (not stated in the paper):")
            for key, why in assumed.items():
                print(f"  {key}={_show(getattr(cfg, key))}: {why}")
        return 0
    for name in RECIPES:
        cfg = get_recipe(name)
        print(f"{name}")
        print(f"  {recipe_description(name)}")
        ms = ",".join(f"{m:g}" for m in cfg.milestone_epochs) if cfg.schedule == "multistep" else ""
        sched = {
            "step": f"step ÷{1 / cfg.gamma:g} every {cfg.step}",
            "multistep": f"×{cfg.gamma:g} at {ms}",
            "plateau": f"÷{1 / cfg.gamma:g} on plateau"
            + (f", {cfg.plateau_drops} drops then stop" if cfg.plateau_drops is not None else ""),
        }.get(cfg.schedule, cfg.schedule)
        extras = [
            f"label smoothing {cfg.label_smoothing:g}" if cfg.label_smoothing else "",
            "nesterov" if cfg.nesterov else "",
            f"cutout {cfg.cutout}" if cfg.cutout else "",
            f"warm-up {cfg.warmup_epochs:g} epochs" if cfg.warmup_epochs else "",
            f"lr {cfg.constant_warmup_lr:g} for {cfg.constant_warmup_iters} it"
            if cfg.constant_warmup_iters
            else "",
        ]
        print(
            f"  model {cfg.model}  dataset {cfg.dataset}  epochs {cfg.epochs}  batch {cfg.batch_size}  "
            f"lr {cfg.effective_lr:g}  wd {cfg.weight_decay:g}  {sched}  augment {cfg.augment}  "
            f"input {cfg.input_size}" + "".join(f"  {e}" for e in extras if e)
        )
        for line in _conditions(name):
            print(f"  {line}")
        assumed = recipe_assumed(name)
        if assumed:
            print("  assumed: " + ", ".join(f"{k}={_show(getattr(cfg, k))}" for k in assumed))
    print(
        "\n`senet recipes NAME` prints a recipe's full config; `senet train --help` its options.",
        file=sys.stderr,
    )
    return 0


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _conditions(name: str) -> list[str]:
    """One line per ``_when`` entry: ``for model *resnet110: constant_warmup_iters=400, ...``."""
    lines = []
    for condition, values in recipe_conditions(name):
        when = ", ".join(
            ("SE networks" if v else "plain networks") if k == "se" else f"{k} {v}"
            for k, v in condition.items()
        )
        opts = values.get("model_options") or {}
        sets = [f"{k}={_show(v)}" for k, v in values.items() if k != "model_options"]
        sets += [f"model option {k}={_show(v)}" for k, v in opts.items()]
        lines.append(f"for {when}: {', '.join(sets)}")
    return lines
