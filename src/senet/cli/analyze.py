"""``senet ablate`` (Sec. 6 tables), ``senet analyze excitations`` (Sec. 7.2, Figs. 6–7), ``senet prune``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from senet.cli._options import add_model_options_argument, parse_key_value, parse_model_options


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_ablate(subparsers)
    _register_analyze(subparsers)
    _register_prune(subparsers)


def _add_data_arguments(p: argparse.ArgumentParser, split: str = "val") -> None:
    p.add_argument(
        "--dataset",
        default="imagefolder",
        help="cifar10 | cifar100 | imagefolder | digits (default imagefolder)",
    )
    p.add_argument(
        "--data-dir",
        help="ImageFolder tree or .tar.gz (e.g. ../shared/data/cifar10-jpeg.tar.gz); CIFAR folder",
    )
    p.add_argument(
        "--split",
        default=split,
        help=f"split to analyse/evaluate (default {split}; val falls back to test)",
    )
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


# --------------------------------------------------------------------------------------------
# senet ablate
# --------------------------------------------------------------------------------------------
def _register_ablate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ablate",
        help="train a grid of SE variants × seeds and write the paper-style table (Sec. 6)",
        description="Each run is an ordinary training run in OUT/<variant>__s<seed>; re-running skips "
        "finished runs and resumes interrupted ones; start several workers on one OUT to share the grid.",
    )
    p.add_argument(
        "--model",
        default="cifar_se_resnet20",
        help="the SE network to vary (default cifar_se_resnet20)",
    )
    p.add_argument(
        "--recipe",
        help="training recipe (`senet recipes`); default: `ablation` (the paper's Sec. 6 protocol) "
        "for an ImageNet-style network on image folders, else the model's recipe (cifar_resnet "
        "for the CIFAR ResNets)",
    )
    p.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="SE option to sweep, repeatable: reduction=2,4,8,16,32 gate=sigmoid,tanh,relu "
        "squeeze=avg,max integration=standard,pre,post,identity,3x3 se_stages=1,2,3,1+2+3 "
        "se_bias=true,false",
    )
    p.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="vary one option at a time around the network's defaults (each of the paper's "
        "Tables 10–16 does) instead of training every combination of the --vary values",
    )
    p.add_argument("--baseline", action="store_true", help="add the plain network (no SE)")
    p.add_argument(
        "--nosqueeze", action="store_true", help="add NoSqueeze (squeeze=none, Table 16)"
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds per variant (0..N-1)")
    p.add_argument("--out", required=True, help="grid directory")
    p.add_argument("--dataset", help="override the recipe's dataset")
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--train-subset", type=int, help="first N training images, class-balanced")
    p.add_argument("--val-subset", type=int)
    p.add_argument("--threads", type=int, help="torch threads per run")
    p.add_argument("--workers", type=int, help="data-loader workers per run")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (one run per worker process)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other TrainConfig option for every run, e.g. --set lr=0.05 --set label_smoothing=0.1",
    )
    add_model_options_argument(p)
    p.add_argument(
        "--stale-after",
        type=float,
        default=600.0,
        help="seconds without heartbeat after which another worker's claim is taken over",
    )
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="train again the runs that failed before (their failed.json); default: skip them",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list the runs and their state; train nothing"
    )
    p.add_argument(
        "--table-only",
        action="store_true",
        help="write the table from finished runs; train nothing",
    )
    p.set_defaults(func=run_ablate)


def run_ablate(args: argparse.Namespace) -> int:
    from senet.analysis import ablation as ab
    from senet.train import get_recipe

    if args.seeds < 1:
        raise ValueError(f"--seeds {args.seeds} must be ≥ 1")
    overrides: dict[str, Any] = {
        k: getattr(args, k)
        for k in (
            "dataset",
            "data_dir",
            "epochs",
            "batch_size",
            "train_subset",
            "val_subset",
            "threads",
            "workers",
            "device",
        )
        if getattr(args, k) is not None
    }
    for item in args.set:
        key, value = parse_key_value(item, "--set")
        overrides[key] = value
    model_options = parse_model_options(args.model_options)
    if model_options:
        overrides["model_options"] = model_options
    overrides.setdefault("progress", False)
    overrides.setdefault("tensorboard", False)
    why = None
    if args.recipe is None:
        args.recipe, why = ab.default_recipe(args.model, args.dataset)
    # validate the recipe and the overrides before building any variant
    get_recipe(args.recipe, **{k: v for k, v in overrides.items() if k != "model_options"})
    vary = ab.parse_vary(args.vary)
    variants = ab.build_variants(
        args.model, vary, args.baseline, args.nosqueeze, model_options, args.one_at_a_time
    )
    if why is not None:  # after every check: bad input stays a one-line error
        print(f"recipe: {args.recipe} ({why}; --recipe NAME chooses another)", file=sys.stderr)
    grid = ab.AblationGrid(
        variants, list(range(args.seeds)), Path(args.out), args.recipe, overrides
    )
    if args.dry_run:
        for run in grid.runs():
            print(f"{run.run_id:40s} {ab.run_state(grid.run_dir(run))}")
        return 0
    if not args.table_only:
        counts = ab.run_grid(grid, stale_after=args.stale_after, retry_failed=args.retry_failed)
        print(json.dumps(counts))
        if counts["interrupted"]:
            return 1
    paths = ab.write_table(grid)
    print(paths["table.md"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


# --------------------------------------------------------------------------------------------
# senet analyze excitations
# --------------------------------------------------------------------------------------------
def _register_analyze(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyze", help="analyses of trained SE networks (excitations: Sec. 7.2)"
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    e = sub.add_parser(
        "excitations",
        help="record every SE block's excitations per class; NPZ + figures like Figs. 6–7",
    )
    e.add_argument("checkpoint", help="model.safetensors (our format; also pruned checkpoints)")
    _add_data_arguments(e)
    e.add_argument(
        "--per-class", type=int, default=50, help="images per class (the paper: 50; 0 = all)"
    )
    e.add_argument(
        "--in-memory",
        action="store_true",
        help="decode the images into memory first (default: stream image folders from disk; "
        "archives, CIFAR and digits are always in memory)",
    )
    e.add_argument("--workers", type=int, default=2, help="data-loader processes (streaming)")
    e.add_argument(
        "--blocks", nargs="+", help="blocks to plot (default: last of each stage + the last stage)"
    )
    e.add_argument(
        "--classes",
        nargs="+",
        help="classes to plot: names, ImageNet wnids or indices (default: --class-preset)",
    )
    e.add_argument(
        "--class-preset",
        choices=("auto", "paper", "first"),
        default="auto",
        help="paper: goldfish, pug, plane, cliff (ImageNet models); first: the first 4 classes; "
        "auto (default): paper where the classes are ImageNet's, else first",
    )
    e.add_argument("--channels", type=int, default=50, help="channels per plot (default 50)")
    e.add_argument(
        "--channel-mode",
        choices=("uniform", "random", "first"),
        default="uniform",
        help="uniform (default): evenly spaced, as the paper samples 50 channels; random: a "
        "seeded sample (--channel-seed); first: channels 0..N-1",
    )
    e.add_argument("--channel-seed", type=int, default=0, help="seed of --channel-mode random")
    e.add_argument("--out", required=True, help="output directory")
    e.set_defaults(func=run_excitations)
    p.set_defaults(func=lambda _a: (p.print_help(), 2)[1])


def _load(path: str) -> Any:
    from senet.analysis.prune import is_pruned_checkpoint, load_pruned
    from senet.interop.weights_file import load_model

    return load_pruned(path) if is_pruned_checkpoint(path) else load_model(path)


def _eval_sizes(model: Any, meta: dict) -> tuple[int, int]:
    """(crop, resize) for evaluation: the checkpoint's, else the registry's for its network."""
    from senet.interop.weights_file import preprocessing_of

    name = meta.get("model") or getattr(model, "model_name", None)
    prep = preprocessing_of({**meta, "model": name} if name else meta)
    return prep.input_size, prep.resize_size


def _dataset(
    args: argparse.Namespace,
    meta: dict,
    split: str,
    subset: int | None,
    stream: bool = False,
    input_size: int | None = None,
) -> Any:
    from senet.data import build_dataset

    data = build_dataset(
        args.dataset,
        args.data_dir,
        split,
        in_memory=not stream,
        input_size=input_size if input_size is not None else meta.get("input_size"),
        subset=subset,
    )
    classes = meta.get("classes")
    if classes and list(classes) != list(data.classes):
        raise ValueError(
            f"the model was trained on classes {list(classes)[:10]} but {split} has {list(data.classes)[:10]}; "
            "use data with the same class folders"
        )
    return data


def _batches(
    args: argparse.Namespace,
    meta: dict,
    data: Any,
    train: bool = False,
    sizes: tuple[int | None, int | None] | None = None,
    workers: int = 0,
) -> Any:
    from senet.data import build_loader

    size, resize = sizes or (meta.get("input_size"), meta.get("resize", meta.get("eval_resize")))
    return build_loader(
        data,
        args.batch_size,
        train=train,
        augment="crop_flip" if train else "none",
        input_size=size,
        eval_resize=resize,
        mean=meta.get("mean"),
        std=meta.get("std"),
        workers=workers,
    )


def _streams(args: argparse.Namespace) -> bool:
    """Whether the images are read from files batch by batch (memory flat in their number)."""
    archive = str(args.data_dir or "").endswith((".tar", ".tar.gz", ".tgz"))
    return args.dataset == "imagefolder" and not archive and not args.in_memory


def run_excitations(args: argparse.Namespace) -> int:
    import torch

    from senet.analysis import excitations as ex
    from senet.analysis.excitation_report import write_excitation_report

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.per_class < 0 or args.channels < 1:
        raise ValueError("--per-class must be ≥ 0 (0 = all images) and --channels ≥ 1")
    model = _load(args.checkpoint)
    meta = getattr(model, "checkpoint_metadata", {}) or {}
    num_classes = int(meta.get("num_classes") or model.num_classes)
    subset = args.per_class * num_classes if args.per_class > 0 else None
    stream = _streams(args)
    sizes = _eval_sizes(model, meta)
    data = _dataset(args, meta, args.split, subset, stream, sizes[0] if stream else None)
    classes = [str(c) for c in (meta.get("classes") or data.classes)]
    shown = ex.choose_classes(classes, args.classes, args.class_preset)  # fail before the work
    batches = _batches(args, meta, data, sizes=sizes, workers=args.workers if stream else 0)
    stats = ex.collect_excitations(model, batches, num_classes, classes=classes)
    report = write_excitation_report(
        stats,
        args.out,
        blocks=args.blocks or ex.default_blocks(stats.blocks),
        classes=shown,
        n_channels=args.channels,
        channel_mode=args.channel_mode,
        channel_seed=args.channel_seed,
        source={"checkpoint": str(args.checkpoint), "split": args.split},
    )
    print(report["specificity.md"].read_text(), end="")
    print("wrote " + ", ".join(str(p) for p in report.values()))
    return 0


# --------------------------------------------------------------------------------------------
# senet prune
# --------------------------------------------------------------------------------------------
def _register_prune(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prune",
        help="cut the least-excited channels structurally; compare with L1-norm pruning at the same budget",
    )
    p.add_argument("checkpoint", help="model.safetensors of a trained SE network")
    _add_data_arguments(p)
    p.add_argument(
        "--amount", type=float, default=0.25, help="fraction of each group's channels to remove"
    )
    p.add_argument(
        "--budget",
        type=float,
        help="instead of --amount: remove at least this fraction of the model's params (or --budget-of macs)",
    )
    p.add_argument("--budget-of", choices=("params", "macs"), default="params")
    p.add_argument(
        "--target",
        choices=("output", "inner"),
        default="output",
        help="output: branch output gated by a standard SE; inner: a block's inner width (SE at 3x3)",
    )
    p.add_argument(
        "--rankings", default="excitation,l1,random", help="comma list of excitation, l1, random"
    )
    p.add_argument("--stats", help="excitations.npz to rank with (default: record on --rank-split)")
    p.add_argument(
        "--rank-split",
        default="train",
        help="split whose excitations rank channels (default train)",
    )
    p.add_argument(
        "--rank-per-class", type=int, default=100, help="images per class for the ranking"
    )
    p.add_argument(
        "--eval-subset", type=int, help="evaluate on the first N images (class-balanced)"
    )
    p.add_argument(
        "--finetune-epochs", type=int, default=0, help="short fine-tune of each pruned model"
    )
    p.add_argument("--finetune-lr", type=float, default=0.01)
    p.add_argument("--finetune-subset", type=int, help="training images for the fine-tune")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        required=True,
        help="output directory (pruned_<ranking>.safetensors, prune_report.md/json)",
    )
    p.set_defaults(func=run_prune)


def run_prune(args: argparse.Namespace) -> int:
    import torch

    from senet.analysis import excitations as ex
    from senet.analysis.prune_report import compare_rankings

    if args.threads:
        torch.set_num_threads(args.threads)
    rankings = [r.strip() for r in args.rankings.split(",") if r.strip()]
    bad = [r for r in rankings if r not in ("excitation", "l1", "random")]
    if bad:
        raise ValueError(f"unknown ranking(s) {bad}; choose from excitation, l1, random")
    model = _load(args.checkpoint)
    meta = getattr(model, "checkpoint_metadata", {}) or {}
    num_classes = int(meta.get("num_classes") or model.num_classes)
    stats = None
    if "excitation" in rankings:
        if args.stats:
            stats = ex.ExcitationStats.load(args.stats)
        else:
            rank_data = _dataset(args, meta, args.rank_split, args.rank_per_class * num_classes)
            print(
                f"recording excitations on {len(rank_data)} {args.rank_split} images to rank channels",
                file=sys.stderr,
            )
            stats = ex.collect_excitations(model, _batches(args, meta, rank_data), num_classes)
    eval_batches = _batches(args, meta, _dataset(args, meta, args.split, args.eval_subset))
    train_batches = None
    if args.finetune_epochs > 0:
        train_data = _dataset(args, meta, "train", args.finetune_subset)

        def train_batches() -> Any:
            return _batches(args, meta, train_data, train=True)

    size = int(meta.get("input_size") or 32)
    amount = args.amount
    if args.budget is not None:
        from senet.analysis.prune import amount_for_budget

        amount, achieved = amount_for_budget(model, args.budget, args.budget_of, args.target, size)
        print(
            f"--budget {args.budget} of {args.budget_of}: cutting {100 * amount:.1f}% of each group's "
            f"channels removes {100 * achieved:.1f}%",
            file=sys.stderr,
        )
    compare_rankings(
        model,
        rankings,
        amount,
        args.target,
        eval_batches,
        size,
        stats=stats,
        train_batches=train_batches,
        finetune_epochs=args.finetune_epochs,
        finetune_lr=args.finetune_lr,
        out=args.out,
        seed=args.seed,
    )
    print(f"wrote {Path(args.out) / 'prune_report.md'}")
    return 0
