"""``senet convert``, ``senet predict`` and ``senet export``: weights in, predictions and deployable files out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert a checkpoint from the original release, timm or torchvision to senet's format",
        description="Convert SRC (.pth/.pt, read with weights_only=True, or .safetensors) to senet's "
        "safetensors format with metadata. Keys are mapped by name; the source's layout is recorded.",
    )
    p.add_argument("src", type=Path, help="checkpoint to read")
    p.add_argument("dst", type=Path, help="output .safetensors file (written only on success)")
    p.add_argument("--model", required=True, help="senet model name, e.g. se_resnet50")
    p.add_argument(
        "--from", dest="source", default="auto", choices=["auto", "original", "timm", "torchvision"],
        help="key layout of SRC: original = released SENets (Cadene / timm legacy_*); default: "
        "detect from key names",
    )  # fmt: skip
    p.add_argument(
        "--num-classes", type=int, default=None, help="default: from the classifier's shape"
    )
    p.add_argument(
        "--classes", type=Path, default=None, help="text file of class names, one a line"
    )
    p.set_defaults(func=_convert)

    p = subparsers.add_parser(
        "predict",
        help="top-5 classes of image files",
        description="Classify images with a senet checkpoint (or a model name: random weights). "
        "Evaluation transform: shorter side 256, centre crop 224 (or the checkpoint's sizes).",
    )
    p.add_argument("model", help="a .safetensors checkpoint written by senet, or a model name")
    p.add_argument("images", nargs="+", type=Path, help="image files")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.set_defaults(func=_predict)

    p = subparsers.add_parser(
        "export",
        help="export a model or checkpoint to ONNX, TorchScript or torch.export (checked against PyTorch)",
        description="Export with a dynamic batch dimension; the file is verified against PyTorch "
        "on a batch of another size (max abs diff <= --atol) before it is kept.",
    )
    p.add_argument("model", help="a .safetensors checkpoint written by senet, or a model name")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=["onnx", "torchscript", "export"],
        default="onnx",
        help="export = torch.export's .pt2 (TorchScript is deprecated upstream)",
    )
    p.add_argument("-o", "--output", type=Path, default=None, help="default: <model>.<onnx|pt|pt2>")
    p.add_argument(
        "--input-size", type=int, default=None, help="default: the checkpoint's, else 224"
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset")
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")
    p.set_defaults(func=_export)


def _convert(args: argparse.Namespace) -> int:
    from senet.interop.weights_file import convert_file

    classes = None
    if args.classes is not None:
        if not args.classes.is_file():
            raise FileNotFoundError(f"class-name file {args.classes} does not exist")
        classes = [line.strip() for line in args.classes.read_text().splitlines() if line.strip()]
    r = convert_file(args.src, args.dst, args.model, args.source, args.num_classes, classes)
    print(
        f"wrote {r.dst}: {r.model}, {r.num_classes} classes, {r.tensors} tensors "
        f"({r.renamed} renamed, {r.filled} BN counters added) from {r.source} layout, "
        f"options {json.dumps(r.options)}"
    )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from senet.interop.inference import load_classifier, predict

    if args.topk < 1:
        raise ValueError(f"--topk {args.topk} must be ≥ 1")
    model, meta = load_classifier(args.model)
    failed = 0
    for r in predict(model, args.images, meta, args.topk):
        if r.error:
            failed += 1
            print(f"senet predict: error: {r.error}", file=sys.stderr)
            if args.json:
                print(json.dumps({"image": r.path, "error": r.error}))
            continue
        if args.json:
            top = [{"index": i, "class": n, "prob": p} for i, n, p in r.top]
            print(json.dumps({"image": r.path, "top": top}))
            continue
        print(r.path)
        for rank, (i, name, prob) in enumerate(r.top, 1):
            print(f"  {rank}. {prob:.4f}  {name} ({i})")
    if failed:
        print(f"senet predict: {failed} of {len(args.images)} image(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _export(args: argparse.Namespace) -> int:
    from senet.interop.export import SUFFIX, export_model
    from senet.interop.inference import crop_size, load_classifier

    model, meta = load_classifier(args.model)
    size = args.input_size or crop_size(meta)
    out = args.output or Path(
        Path(args.model).stem if Path(args.model).is_file() else args.model
    ).with_suffix(SUFFIX[args.fmt])
    keep = {
        k: meta[k]
        for k in ("model", "options", "num_classes", "mean", "std", "input_size", "classes")
        if k in meta
    }
    kwargs = {"opset": args.opset} if args.fmt == "onnx" else {}
    r = export_model(
        model,
        out,
        args.fmt,
        input_size=size,
        check=not args.no_check,
        atol=args.atol,
        metadata=keep,
        **kwargs,
    )
    check = (
        "not checked"
        if r.max_abs_diff is None
        else f"max abs diff vs PyTorch {r.max_abs_diff:.2e} at batch {r.check_batch}"
    )
    print(f"wrote {r.path} ({r.format}, input N×3×{size}×{size}, dynamic batch; {check})")
    return 0
