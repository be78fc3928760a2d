"""``senet convert``, ``senet predict`` and ``senet export``: weights in, predictions and deployable files out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from senet.cli._options import add_model_options_argument, parse_model_options

#: ONNX opsets every senet network exports with (PyTorch's TorchScript-based exporter goes up to
#: 20; CIFAR ResNets' strided-slice shortcut needs 10)
OPSET_MIN, OPSET_MAX = 10, 20


def _add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu, cuda ...")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--amp",
        choices=["auto", "none", "bf16", "fp16"],
        default="auto",
        help="autocast precision (auto: bf16 on CPUs with native bf16 and GPUs, else fp32)",
    )
    p.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        default=None,
        help="keep NCHW (default: channels_last where bf16 autocast is chosen)",
    )


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
        "--from",
        dest="source",
        default="auto",
        choices=["auto", "original", "timm", "torchvision"],
        help="key layout of SRC: original = released SENets (Cadene / timm legacy_*); default: "
        "detect from key names",
    )
    p.add_argument(
        "--num-classes", type=int, default=None, help="default: from the classifier's shape"
    )
    p.add_argument(
        "--classes", type=Path, default=None, help="text file of class names, one a line"
    )
    p.set_defaults(func=_convert)

    p = subparsers.add_parser(
        "predict",
        help="top-k classes of images (files, folders, globs)",
        description="Classify images with weights: a .safetensors file written by senet, a "
        "training run directory, or registered weights (`senet weights`: se_resnet50.original, "
        "or a model name for its default weights; a model without weights runs random ones). "
        "Each image goes through the weights' own evaluation transform, in batches.",
    )
    p.add_argument("model", help="weights file, run directory, or MODEL[.TAG]")
    p.add_argument("images", nargs="+", help="image files, folders (every image below) or globs")
    p.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per image")
    p.add_argument(
        "--optimize",
        action="store_true",
        help="fold BN and pack the convolution weights for oneDNN first "
        "(senet.layers.fuse.optimize_for_inference): faster, same classes, probabilities equal "
        "up to float rounding",
    )
    _add_runtime(p)
    add_model_options_argument(p)
    p.set_defaults(func=_predict)

    p = subparsers.add_parser(
        "export",
        help="export a model or checkpoint to ONNX, TorchScript or torch.export (checked against PyTorch)",
        description="Export with a dynamic batch dimension; the file is verified against PyTorch "
        "on a batch of another size (max abs diff <= --atol) before it is kept. Input channels "
        "and size come from the weights.",
    )
    p.add_argument("model", help="weights file, run directory, or MODEL[.TAG]")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=["onnx", "torchscript", "export"],
        default="onnx",
        help="export = torch.export's .pt2 (TorchScript is deprecated upstream)",
    )
    p.add_argument(
        "--out",
        "--output",
        dest="output",
        type=Path,
        default=None,
        help="file to write (default: <model>.<onnx|pt|pt2>; --output is a deprecated spelling)",
    )
    p.add_argument(
        "--input-size", type=int, default=None, help="default: the weights' evaluation crop"
    )
    p.add_argument(
        "--opset",
        type=int,
        default=17,
        help=f"ONNX opset, {OPSET_MIN} to {OPSET_MAX} (default 17)",
    )
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")
    add_model_options_argument(p)
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
    from senet.cli.eval import resolve_device, set_threads
    from senet.interop.evaluation import prepare_model
    from senet.interop.inference import expand_inputs, load_classifier, predict
    from senet.layers import native
    from senet.utils.cpu import choose_precision

    if args.topk < 1:
        raise ValueError(f"--topk {args.topk} must be ≥ 1")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size} must be ≥ 1")
    paths = expand_inputs(args.images)
    model, meta = load_classifier(args.model, parse_model_options(args.model_options))
    set_threads(args.threads)
    device = resolve_device(args.device)
    precision = choose_precision(device, args.amp, args.channels_last)
    kernels = native.describe_for(device)
    print(f"senet predict: {precision.describe()}{kernels}", file=sys.stderr)
    model = prepare_model(model, device, precision)
    failed = 0
    if args.json:
        print("[", flush=True)
    for n, r in enumerate(
        predict(model, paths, meta, args.topk, args.batch_size, precision, optimize=args.optimize)
    ):
        if r.error:
            failed += 1
            print(f"senet predict: error: {r.error}", file=sys.stderr)
        if args.json:
            print(("  " if n == 0 else ", ") + json.dumps(r.as_json()), flush=True)
            continue
        if r.error:
            continue
        print(r.path)
        for rank, (i, name, prob) in enumerate(r.top, 1):
            print(f"  {rank}. {prob:.4f}  {name} ({i})")
    if args.json:
        print("]")
    if failed:
        print(f"senet predict: {failed} of {len(paths)} image(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _export(args: argparse.Namespace) -> int:
    import torch

    from senet.interop.export import SUFFIX, export_model
    from senet.interop.inference import load_classifier
    from senet.interop.weights_file import preprocessing_of
    from senet.models.registry import get_entry

    for item in args.model_options or []:
        if "=" not in item and Path(item).suffix in (".onnx", ".pt", ".pt2"):
            raise ValueError(
                f"-o {item}: -o sets a model option (KEY=VALUE); write the output file with --out {item}"
            )
    if args.fmt == "onnx" and not OPSET_MIN <= args.opset <= OPSET_MAX:
        raise ValueError(
            f"--opset {args.opset} is not supported: senet's networks export with opsets "
            f"{OPSET_MIN} to {OPSET_MAX} (default 17)"
        )
    if args.atol <= 0:
        raise ValueError(f"--atol {args.atol} must be > 0 (default 1e-4)")
    model, meta = load_classifier(args.model, parse_model_options(args.model_options))
    prep = preprocessing_of(meta)
    size = args.input_size if args.input_size is not None else prep.input_size
    if size < 1:
        raise ValueError(
            f"--input-size {size} must be a positive integer (the weights use {prep.input_size})"
        )
    try:  # a size the network cannot take (its feature map would vanish) fails here, in one line
        with torch.no_grad():
            model(torch.zeros(1, prep.in_chans, size, size))
    except RuntimeError as err:
        first = (str(err).splitlines() or [""])[0][:200]
        raise ValueError(
            f"--input-size {size} does not fit {meta['model']} ({first}); use its weights' "
            f"{prep.input_size} or at least {get_entry(meta['model']).min_input_size}"
        ) from None
    out = args.output or Path(
        Path(args.model).stem if Path(args.model).is_file() else str(args.model).replace(".", "_")
    ).with_suffix(SUFFIX[args.fmt])
    keep = {k: meta[k] for k in ("model", "options", "num_classes", "classes") if k in meta}
    keep.update(prep.to_metadata())
    kwargs = {"opset": args.opset} if args.fmt == "onnx" else {}
    r = export_model(
        model,
        out,
        args.fmt,
        input_size=size,
        in_chans=prep.in_chans,
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
    print(
        f"wrote {r.path} ({r.format}, input N×{prep.in_chans}×{size}×{size}, dynamic batch; {check})"
    )
    return 0
