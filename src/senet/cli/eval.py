"""``senet eval``: top-1/top-5 error of weights (a file, a run directory or a registered name) on a split.

Images are streamed through a DataLoader (memory flat in the split's size) with the weights' own
evaluation transform; ``--input-size``/``--eval-resize``/``--crop-pct`` evaluate at another
resolution, ``--tta flip|10crop`` averages the softmax over several views.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from senet.cli._options import HelpFormatter, add_model_options_argument, parse_model_options


def register(subparsers: argparse._SubParsersAction) -> None:
    e = subparsers.add_parser(
        "eval",
        help="evaluate weights: top-1/top-5 error",
        description="Evaluate weights on a dataset split: top-1/top-5 error (%), loss, count. "
        "WEIGHTS is a .safetensors file, a training run directory, or registered weights "
        "(`senet weights`: se_resnet50.original, or a model name for its default weights). "
        "Preprocessing comes from the weights (the original release: 256 → 224 bilinear); "
        "images are streamed, never held in memory.",
        formatter_class=HelpFormatter,
    )
    e.add_argument("weights", help="model.safetensors, a run directory, or MODEL[.TAG]")
    data = e.add_argument_group("data")
    data.add_argument(
        "--dataset",
        choices=["cifar10", "cifar100", "imagefolder", "digits"],
        help="dataset kind (default: the run's config.json)",
    )
    data.add_argument(
        "--data-dir",
        help="dataset folder (ImageFolder: <dir>/val|test/<class>/*, or a .tar.gz of one; "
        "default: the run's config.json)",
    )
    data.add_argument("--split", default="val", help="split to evaluate (val falls back to test)")
    data.add_argument("--subset", type=int, help="only the first N images, class-balanced")
    data.add_argument(
        "--skip-corrupt", action="store_true", help="skip unreadable images (counted)"
    )
    prep = e.add_argument_group("preprocessing (default: the weights' own)")
    prep.add_argument(
        "--input-size", type=int, help="centre crop size, e.g. 320 for SENet-154 at 320"
    )
    prep.add_argument("--eval-resize", type=int, help="shorter side before the crop (pixels)")
    prep.add_argument(
        "--crop-pct", type=float, help="crop / resized shorter side (timm's crop_pct, e.g. 0.875)"
    )
    prep.add_argument(
        "--tta",
        choices=["none", "flip", "10crop"],
        default="none",
        help="test-time augmentation: average the softmax over the crop and its mirror, or ten crops",
    )
    run = e.add_argument_group("run")
    run.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    run.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    run.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    run.add_argument(
        "--amp",
        choices=["auto", "none", "bf16", "fp16"],
        default="auto",
        help="autocast precision; auto: a run directory's own, else bf16 on CPUs with native "
        "bf16 and on GPUs, fp32 elsewhere",
    )
    run.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        default=None,
        help="keep NCHW (default: channels_last where bf16 autocast is chosen)",
    )
    add_model_options_argument(run)
    out = e.add_argument_group("output")
    out.add_argument(
        "--save-logits", help="write scores and labels to this .pt file (weights_only-loadable)"
    )
    out.add_argument("--json", action="store_true", help="print the result as JSON")
    e.set_defaults(func=_eval)


def set_threads(threads: int | None) -> None:
    """``--threads N``: torch's CPU threads (None: leave torch's default)."""
    import torch

    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads {threads} must be ≥ 1")
    torch.set_num_threads(threads)


def resolve_device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r} is not a device (auto, cpu, cuda, cuda:1)") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available; use --device cpu")
    return device


def _check_positive(args: argparse.Namespace) -> None:
    for flag in ("batch_size", "subset"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} {value} must be ≥ 1")
    if args.workers < 0:
        raise ValueError(f"--workers {args.workers} must be ≥ 0 (0: read images in this process)")


def _with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` completed with the parser's defaults (callers that build a Namespace by hand)."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    for key, value in vars(parser.parse_args(["eval", "-"])).items():
        if not hasattr(args, key):
            setattr(args, key, value)
    return args


def _eval(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from senet.data.streaming import collate_eval, eval_images
    from senet.interop.evaluation import evaluate_batches, prepare_model, tta_transform
    from senet.interop.inference import load_classifier
    from senet.interop.weights_file import preprocessing_of
    from senet.layers import native
    from senet.utils.cpu import choose_precision
    from senet.utils.io import atomic_write

    args = _with_defaults(args)
    _check_positive(args)
    spec = Path(args.weights)
    run_cfg: dict[str, Any] = {}
    if spec.is_dir() and (spec / "config.json").is_file():
        run_cfg = json.loads((spec / "config.json").read_text())
    options = parse_model_options(args.model_options)
    model, meta = load_classifier(args.weights, options)
    dataset = args.dataset or run_cfg.get("dataset")
    if dataset is None:
        raise ValueError(
            f"say which data to evaluate on: --dataset (and --data-dir); {args.weights} has no "
            "run config beside it"
        )
    same_data = dataset == run_cfg.get("dataset")
    data_dir = args.data_dir or (run_cfg.get("data_dir") if same_data else None)
    subset = (
        args.subset
        if args.subset is not None
        else (run_cfg.get("val_subset") if same_data else None)
    )
    if not meta.get("mean"):
        print(
            "senet eval: the weights' metadata has no mean/std; normalising with ImageNet's",
            file=sys.stderr,
        )
    prep = preprocessing_of(meta).with_overrides(args.input_size, args.eval_resize, args.crop_pct)
    set_threads(args.threads)
    device = resolve_device(args.device)
    amp, channels_last, why = args.amp, args.channels_last, ""
    if amp == "auto" and run_cfg.get("amp") in ("none", "bf16", "fp16"):
        # a run directory evaluates as it was validated during training, so its numbers reproduce
        amp = run_cfg["amp"] if run_cfg["amp"] != "fp16" or device.type == "cuda" else "auto"
        if channels_last is None and isinstance(run_cfg.get("channels_last"), bool):
            channels_last = run_cfg["channels_last"]
        why = " — the run's own setting (--amp/--no-channels-last to change it)"
    precision = choose_precision(device, amp, channels_last)
    images = eval_images(dataset, data_dir, args.split, prep, tta_transform(prep, args.tta), subset)
    if meta.get("classes") and list(meta["classes"]) != list(images.classes):
        raise ValueError(
            f"the weights were trained on classes {list(meta['classes'])[:5]}… but {dataset} "
            f"{args.split} has {list(images.classes)[:5]}…; evaluate on data with the same class folders"
        )
    if model.num_classes != len(images.classes):
        raise ValueError(
            f"the model has {model.num_classes} classes but {dataset} {args.split} has "
            f"{len(images.classes)}; evaluate on the dataset it was trained for"
        )
    described = (
        f"{'fp32' if precision.amp == 'none' else precision.amp + ' autocast'}, "
        f"{'channels_last' if precision.channels_last else 'NCHW'}{why}"
        if why
        else precision.describe()
    )
    described += native.describe_for(device)
    print(f"senet eval: {described}; {_describe(prep)}", file=sys.stderr)
    loader = DataLoader(
        images,
        batch_size=args.batch_size,
        num_workers=args.workers,
        collate_fn=collate_eval,
        pin_memory=device.type == "cuda",
    )
    model = prepare_model(model, device, precision)
    with tqdm(
        total=len(images), desc="evaluating", unit="img", disable=None, leave=False, file=sys.stderr
    ) as bar:
        res = evaluate_batches(
            model,
            loader,
            device=device,
            precision=precision,
            skip_corrupt=args.skip_corrupt,
            return_logits=bool(args.save_logits),
            progress=bar,
        )
    if args.save_logits:
        blob = {
            "logits": res.pop("logits"),
            "labels": res.pop("labels"),
            "classes": list(images.classes),
        }
        atomic_write(args.save_logits, lambda p: torch.save(blob, p))
    res.update(
        weights=str(args.weights),
        model=meta.get("model"),
        dataset=dataset,
        split=args.split,
        tta=args.tta,
        preprocessing=prep.to_metadata(),
        precision=precision.describe(),
    )
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
        return 0
    skipped = res["skipped_corrupt"]
    extra = f" ({skipped} corrupt images skipped)" if skipped else ""
    print(
        f"{meta.get('model')} on {dataset} {args.split}: top-1 err {res['top1_err']:.2f}%  "
        f"top-5 err {res['top5_err']:.2f}%  loss {res['loss']:.4f}  n={res['n']}{extra}"
    )
    return 0


def _describe(prep: Any) -> str:
    return (
        f"resize {prep.resize_size} ({prep.interpolation}) → centre crop {prep.input_size}, "
        f"mean {list(prep.mean)}, std {list(prep.std)}"
    )
