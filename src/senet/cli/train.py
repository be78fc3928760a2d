"""``senet train``, ``senet eval`` and ``senet recipes``: the training engine on the command line."""

from __future__ import annotations

import argparse
import ast
import json
import sys
from typing import Any


def _parse_option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(
            f"model option {text!r} must look like key=value (e.g. reduction=8)"
        )
    key, value = text.split("=", 1)
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value  # a bare word: a string option (gate=tanh)
    return key.strip(), parsed


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers"
        ) from None


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true/false)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a network with one of the paper's recipes",
        description="Train a network with a named recipe (see `senet recipes`) plus overrides. Every "
        "option left unset keeps the recipe's value; the effective config is saved as OUT/config.json. "
        "Multi-process: torchrun --nproc_per_node=N -m senet train ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--recipe", default="digits", help="named preset: imagenet, cifar, mobile, senet154, digits"
    )
    g = p.add_argument_group("model")
    g.add_argument("--model", help="registered network name (`senet models`)")
    g.add_argument(
        "--model-option",
        dest="model_options",
        action="append",
        type=_parse_option,
        default=[],
        metavar="KEY=VALUE",
        help="network option, repeatable (reduction=8, gate=tanh, in_chans=1)",
    )
    g.add_argument(
        "--num-classes",
        type=int,
        help="classifier size; default: the number of classes in the data",
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset", choices=["cifar10", "cifar100", "imagefolder", "digits"], help="dataset kind"
    )
    g.add_argument(
        "--data-dir",
        help="dataset folder (ImageFolder: <dir>/train, <dir>/val|test; or a .tar.gz of one)",
    )
    g.add_argument("--train-split", help="training split name")
    g.add_argument(
        "--val-split", help="validation split (val falls back to test in ImageFolder trees)"
    )
    g.add_argument(
        "--train-subset", type=int, help="use only the first N training images, class-balanced"
    )
    g.add_argument(
        "--val-subset", type=int, help="use only the first N validation images, class-balanced"
    )
    g.add_argument(
        "--in-memory",
        type=_bool,
        help="decode the data once into uint8 tensors (default: unless rrc_flip)",
    )
    g.add_argument(
        "--augment", choices=["crop_flip", "crop", "rrc_flip", "none"], help="training augmentation"
    )
    g.add_argument("--crop-padding", type=int, help="zero padding of the random crop (CIFAR: 4)")
    g.add_argument(
        "--rrc-scale-min", type=float, help="smallest area fraction of the random-size crop"
    )
    g.add_argument("--input-size", type=int, help="training crop size (and in-memory resize)")
    g.add_argument(
        "--eval-resize",
        type=int,
        help="shorter side before the evaluation centre crop (256 for 224)",
    )
    g.add_argument(
        "--normalize",
        choices=["meanstd", "mean"],
        help="mean/std, or the paper's mean-RGB subtraction",
    )
    g.add_argument("--mean", type=_floats, help="channel means on the [0,1] scale, comma-separated")
    g.add_argument("--std", type=_floats, help="channel stds on the [0,1] scale, comma-separated")
    g.add_argument(
        "--skip-corrupt", action="store_true", default=None, help="skip unreadable images (counted)"
    )
    g.add_argument(
        "--download", action="store_true", default=None, help="download CIFAR when it is missing"
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="number of epochs")
    g.add_argument("--batch-size", type=int, help="global batch size (split across processes)")
    g.add_argument(
        "--lr",
        type=float,
        help="peak learning rate; default base-lr × batch-size / base-batch-size",
    )
    g.add_argument(
        "--base-lr", type=float, help="learning rate at --base-batch-size (linear scaling rule)"
    )
    g.add_argument("--base-batch-size", type=int, help="batch size --base-lr refers to")
    g.add_argument("--momentum", type=float, help="SGD momentum")
    g.add_argument("--nesterov", type=_bool, help="Nesterov momentum")
    g.add_argument("--weight-decay", type=float, help="L2 weight decay")
    g.add_argument(
        "--schedule",
        choices=["step", "multistep", "cosine", "plateau", "constant"],
        help="lr schedule",
    )
    g.add_argument(
        "--milestones", type=_floats, help="multistep: epochs at which lr ÷= 1/gamma (e.g. 82,123)"
    )
    g.add_argument(
        "--milestone-fractions", type=_floats, help="multistep: milestones as fractions of --epochs"
    )
    g.add_argument("--step", type=int, help="step schedule: decay every N epochs")
    g.add_argument("--gamma", type=float, help="decay factor of step/multistep/plateau")
    g.add_argument(
        "--plateau-patience", type=int, help="plateau: epochs without improvement before decaying"
    )
    g.add_argument(
        "--warmup-epochs", type=float, help="linear warm-up length in epochs (modern option)"
    )
    g.add_argument(
        "--constant-warmup-iters",
        type=int,
        help="ResNet-110 trick: lr --constant-warmup-lr for N iters",
    )
    g.add_argument("--constant-warmup-lr", type=float, help="the constant warm-up learning rate")
    g.add_argument("--label-smoothing", type=float, help="label smoothing (SENet-154: 0.1)")
    g.add_argument(
        "--freeze-bn-epochs", type=int, help="freeze BatchNorm statistics for the last N epochs"
    )
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, help="seed of initialisation, data order and augmentation")
    g.add_argument("--out", help="run directory (default runs/<model>-<dataset>-s<seed>)")
    g.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument(
        "--amp",
        choices=["none", "bf16", "fp16"],
        help="mixed precision autocast (fp16 on CUDA only)",
    )
    g.add_argument(
        "--channels-last", action="store_true", default=None, help="channels_last memory format"
    )
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument(
        "--sync-bn", action="store_true", default=None, help="SyncBatchNorm across processes"
    )
    g.add_argument("--workers", type=int, help="DataLoader workers (file-based data only)")
    g.add_argument("--threads", type=int, help="torch CPU threads (torch.set_num_threads)")
    g.add_argument(
        "--keep-freed-memory",
        type=_bool,
        help="raise glibc's malloc thresholds so freed feature maps are reused, not page-faulted "
        "in again (default true; docs/performance.md)",
    )
    g.add_argument("--eval-batch-size", type=int, help="evaluation batch size")
    g.add_argument("--eval-every", type=int, help="evaluate every N epochs (and after the last)")
    g.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        default=None,
        help="do not write TensorBoard logs (written to OUT/tb when tensorboard is installed)",
    )
    g.add_argument(
        "--progress", type=_bool, help="progress bar (default: when stderr is a terminal)"
    )
    g.add_argument(
        "--resume", action="store_true", default=None, help="continue from OUT/checkpoint.pt"
    )
    g.add_argument(
        "--force", action="store_true", default=None, help="train again even if OUT holds a run"
    )
    g.add_argument(
        "--stop-after-epochs", type=int, help="stop (resumably) after N epochs of this call"
    )
    g.add_argument(
        "--print-config", action="store_true", help="print the effective config and exit"
    )
    p.set_defaults(func=_train)

    r = subparsers.add_parser(
        "recipes",
        help="list the training recipes and their settings",
        description="The paper's training recipes as named presets.",
    )
    r.add_argument("name", nargs="?", help="show one recipe's full effective config")
    r.set_defaults(func=_recipes)


_NOT_CONFIG = {"command", "func", "recipe", "print_config", "model_options"}


def config_from_args(args: argparse.Namespace) -> Any:
    """The ``TrainConfig`` that ``senet train`` arguments describe (recipe + overrides)."""
    from senet.train import get_recipe, recipe_description

    recipe_description(args.recipe)  # unknown recipe → clear error
    overrides = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG and v is not None}
    from senet.train.recipes import RECIPES

    options = dict(RECIPES[args.recipe].get("model_options", {}))
    if args.model and args.model != RECIPES[args.recipe].get("model"):
        options = {
            k: v for k, v in options.items() if k == "in_chans"
        }  # keep the data-driven option
    options.update(dict(args.model_options))
    return get_recipe(args.recipe, model_options=options, **overrides)


def _train(args: argparse.Namespace) -> int:
    from senet.train import train

    config = config_from_args(args)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2, sort_keys=True))
        return 0
    result = train(config)
    return {"interrupted": 130}.get(result.get("status", ""), 0)


def _recipes(args: argparse.Namespace) -> int:
    from senet.train import RECIPES, get_recipe, recipe_description

    if args.name:
        cfg = get_recipe(args.name)
        print(f"{args.name}: {recipe_description(args.name)}\n")
        print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
        return 0
    for name in RECIPES:
        cfg = get_recipe(name)
        print(f"{name}")
        print(f"  {recipe_description(name)}")
        ms = ",".join(f"{m:g}" for m in cfg.milestone_epochs) if cfg.schedule == "multistep" else ""
        sched = {
            "step": f"step ÷{1 / cfg.gamma:g} every {cfg.step}",
            "multistep": f"÷{1 / cfg.gamma:g} at {ms}",
        }.get(cfg.schedule, cfg.schedule)
        print(
            f"  model {cfg.model}  dataset {cfg.dataset}  epochs {cfg.epochs}  batch {cfg.batch_size}  "
            f"lr {cfg.effective_lr:g}  wd {cfg.weight_decay:g}  {sched}  augment {cfg.augment}"
            + (f"  label smoothing {cfg.label_smoothing:g}" if cfg.label_smoothing else "")
        )
    print("\n`senet recipes NAME` prints a recipe's full config; `senet train --recipe NAME --help` its options.",
          file=sys.stderr)  # fmt: skip
    return 0
