"""``senet eval``: top-1/top-5 error of weights (a file or a run directory) on a dataset split."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    e = subparsers.add_parser(
        "eval",
        help="evaluate weights: top-1/top-5 error",
        description="Evaluate a weights file (or a run directory) on a dataset split: single centre crop "
        "top-1/top-5 error (%%), loss, count. Preprocessing comes from the weights' metadata.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    e.add_argument("weights", help="model.safetensors, or a run directory holding one")
    e.add_argument(
        "--dataset",
        choices=["cifar10", "cifar100", "imagefolder", "digits"],
        help="dataset kind (default: the run's config.json)",
    )
    e.add_argument("--data-dir", help="dataset folder (default: the run's config.json)")
    e.add_argument("--split", default="val", help="split to evaluate (val falls back to test)")
    e.add_argument("--subset", type=int, help="only the first N images, class-balanced")
    e.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda ...")
    e.add_argument("--workers", type=int, default=2, help="DataLoader workers (file-based data)")
    e.add_argument("--skip-corrupt", action="store_true", help="skip unreadable images (counted)")
    e.add_argument(
        "--save-logits", help="write logits and labels to this .pt file (weights_only-loadable)"
    )
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from senet.interop.weights_file import load_model
    from senet.train import TrainConfig, build_eval_loader, evaluate
    from senet.train.distributed import resolve_device
    from senet.utils.io import atomic_write

    path = Path(args.weights)
    run_cfg: dict[str, Any] = {}
    if path.is_dir():
        if (path / "config.json").is_file():
            run_cfg = json.loads((path / "config.json").read_text())
        path = path / "model.safetensors"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: the run has not finished (train it to the end first)"
            )
    model = load_model(path)
    meta = model.checkpoint_metadata
    dataset = args.dataset or run_cfg.get("dataset")
    if dataset is None:
        raise ValueError(
            f"say which data to evaluate on: --dataset (and --data-dir); {path} has no run config beside it"
        )
    data_dir = args.data_dir or (
        run_cfg.get("data_dir") if dataset == run_cfg.get("dataset") else None
    )
    config = TrainConfig(
        dataset=dataset, data_dir=data_dir, in_memory=meta.get("in_memory"), input_size=meta.get("input_size"),
        skip_corrupt=args.skip_corrupt, workers=args.workers, augment="none",
    )  # fmt: skip
    device = resolve_device(args.device)
    loader = build_eval_loader(config, args.split, preprocessing=meta, subset=args.subset,
                               batch_size=args.batch_size, device=device)  # fmt: skip
    if meta.get("classes") and len(meta["classes"]) != model.num_classes:
        raise ValueError(
            f"{path}: metadata lists {len(meta['classes'])} classes but the model has {model.num_classes}"
        )
    if model.num_classes != len(loader.dataset.classes):
        raise ValueError(
            f"the model has {model.num_classes} classes but {dataset} {args.split} has "
            f"{len(loader.dataset.classes)}; evaluate on the dataset it was trained for"
        )
    model.to(device)
    res = evaluate(model, loader, device=device, return_logits=bool(args.save_logits))
    if args.save_logits:
        blob = {
            "logits": res.pop("logits"),
            "labels": res.pop("labels"),
            "classes": list(loader.dataset.classes),
        }
        atomic_write(args.save_logits, lambda p: torch.save(blob, p))
    else:
        res.pop("logits", None), res.pop("labels", None)
    skipped = len(getattr(loader.dataset, "skipped", []))
    res.update(weights=str(path), dataset=dataset, split=args.split, skipped_corrupt=skipped)
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
    else:
        extra = f" ({skipped} corrupt images skipped)" if skipped else ""
        print(f"{meta.get('model')} on {dataset} {args.split}: top-1 err {res['top1_err']:.2f}%  "
              f"top-5 err {res['top5_err']:.2f}%  loss {res['loss']:.4f}  n={res['n']}{extra}")  # fmt: skip
    return 0
