"""Classify images with weights: a file, a run directory or a registered name; batched top-k.

Evaluation (Sec. 5.1): the weights' ``Preprocessing`` (``senet.data.preprocessing``: resize the
shorter side, centre crop, normalise), the same description ``senet train`` writes and
``senet eval`` reads; class names from the metadata (ImageNet's 1,000 when ``num_classes`` is 1000
and none are stored). Inputs may be files, folders (every image below them, sorted) and globs.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.data.datasets import IMAGE_EXTENSIONS
from senet.data.preprocessing import Preprocessing
from senet.factory import create_model
from senet.interop.weights_file import load_model, preprocessing_of, weights_path
from senet.layers.fuse import optimize_for_inference
from senet.models.registry import get_entry, list_models
from senet.utils.cpu import PrecisionChoice
from senet.weights import find_weights, get_weights


@dataclass
class Prediction:
    """Top-k classes of one image, or the reason it could not be classified."""

    path: str
    top: list[tuple[int, str, float]] = field(default_factory=list)  # (index, name, probability)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """``{"path", "top1", "top1_index", "top1_prob", "topk": [{"index", "class", "prob"}]}``,
        or ``{"path", "error"}``."""
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        index, name, prob = self.top[0]
        return {
            "path": self.path,
            "top1": name,
            "top1_index": index,
            "top1_prob": prob,
            "topk": [{"index": i, "class": n, "prob": p} for i, n, p in self.top],
        }


def load_classifier(
    spec: str | Path, options: dict[str, Any] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """A model in eval mode and its metadata, from what the user named:

    a weights file (``.safetensors`` written by senet, or any file ``create_model(checkpoint=)``
    reads), a training run directory (its ``model.safetensors``), registered weights
    (``se_resnet50.original``, or a model name alone: its default weights, downloaded once), or a
    model without registered weights (random weights, with a warning: for trying the pipeline
    only). ``options`` (``-o KEY=VALUE``) apply to names only.
    """
    options = dict(options or {})
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        path = weights_path(path)
    if path.is_file():
        if options:
            raise ValueError(
                f"-o {' '.join(options)}: the options of weights {path} come from the file; "
                "drop -o or rebuild the model yourself"
            )
        model = load_model(path)
        meta = dict(getattr(model, "checkpoint_metadata", {}) or {})
    elif (entry := find_weights(text)) is not None:
        print(f"using weights {entry.name} ({entry.source}, {entry.url})", file=sys.stderr)
        model = create_model(entry.model, pretrained=entry.tag, **options)
        meta = dict(model.checkpoint_metadata)
    elif text in list_models():
        model = create_model(text, **options)
        meta = {"model": text, "num_classes": model.num_classes, "options": options}
        print(
            f"warning: {text} has no pretrained weights (`senet weights` lists those that do), so "
            "it runs random weights: its predictions are meaningless",
            file=sys.stderr,
        )
    elif path.suffix in (".safetensors", ".pt", ".pth", ".bin"):
        raise FileNotFoundError(f"weights file {path} does not exist")
    else:
        model_name, dot, tag = text.partition(".")
        if dot and model_name in list_models():
            get_weights(model_name, tag)  # raises: no such tag, with the close ones
        get_entry(text)  # raises with the closest names
        raise ValueError(f"{text} is neither a file, a run directory nor a model name")
    meta.setdefault("model", getattr(model, "model_name", None))
    meta.setdefault("input_size", get_entry(meta["model"]).input_size)  # e.g. 32 for CIFAR nets
    return model.eval(), meta


def crop_size(meta: dict[str, Any]) -> int:
    """The evaluation crop of the weights described by ``meta``."""
    return preprocessing_of(meta).input_size


def eval_transform(meta: dict[str, Any]) -> Any:
    """The paper's evaluation transform with the weights' own sizes and statistics."""
    return preprocessing_of(meta).transform()


def class_names(meta: dict[str, Any], num_classes: int) -> list[str]:
    """Names from the metadata, ImageNet's for 1,000 classes, else ``class_<i>``."""
    names = meta.get("classes")
    if names and len(names) == num_classes:
        return [str(n) for n in names]
    if num_classes == 1000:
        from torchvision.models import ResNet50_Weights

        return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    return [f"class_{i}" for i in range(num_classes)]


def expand_inputs(inputs: Sequence[str | Path]) -> list[str]:
    """Files as given, folders as every image below them (sorted), globs as their matches.

    A name that matches nothing is kept, so that it is reported as a missing file.
    """
    out: list[str] = []
    for item in inputs:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_dir():
            found = sorted(
                os.path.join(d, f)
                for d, _, files in os.walk(path, followlinks=True)
                for f in files
                if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
            )
            if not found:
                raise ValueError(f"folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            out.extend(found)
        elif not path.exists() and any(c in text for c in "*?["):
            matches = sorted(
                p for p in glob.glob(os.path.expanduser(text), recursive=True) if Path(p).is_file()
            )
            if not matches:
                raise ValueError(f"{text} matches no files")
            out.extend(matches)
        else:
            out.append(text)
    return out


def _batches(paths: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(paths), size):
        yield paths[start : start + size]


@torch.inference_mode()
def predict(
    model: nn.Module,
    paths: Sequence[str | Path],
    meta: dict[str, Any] | None = None,
    topk: int = 5,
    batch_size: int = 32,
    precision: PrecisionChoice | None = None,
    preprocessing: Preprocessing | None = None,
    optimize: bool = False,
) -> Iterator[Prediction]:
    """Top-``topk`` softmax probabilities per image, ``batch_size`` images per forward pass.

    Results come in input order as each batch finishes; a bad file gets an error, the rest run.
    ``optimize``: run an ``optimize_for_inference`` copy of ``model`` (BN folded, convolution
    weights packed for oneDNN; bf16 weights under bf16 precision), built on the first batch:
    faster, with probabilities equal to the unoptimized model's up to float rounding.
    """
    meta = meta or {}
    prep = preprocessing or preprocessing_of(meta)
    transform = prep.transform()
    num_classes = int(getattr(model, "num_classes", 0) or meta.get("num_classes") or 0)
    if num_classes < 1:
        raise ValueError("the model has no classifier (num_classes=0): it cannot predict classes")
    names = class_names(meta, num_classes)
    k = min(topk, num_classes)
    device = next(model.parameters()).device
    dtype = (
        {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision.amp) if precision else None
    )
    channels_last = bool(precision and precision.channels_last)
    for chunk in _batches([str(p) for p in paths], max(1, batch_size)):
        tensors, errors = {}, {}
        for p in chunk:
            try:
                tensors[p] = transform(prep.open_image(p))
            except ValueError as err:
                errors[p] = str(err)
        if tensors:
            x = torch.stack(list(tensors.values())).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if optimize:
                # built on the first batch; weights stored in the autocast dtype (bf16, fp16)
                model = optimize_for_inference(model, example=x[:1], dtype=dtype)
                optimize = False
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(x)
            values, indices = logits.float().softmax(dim=1).topk(k)
            tops = {
                p: [(int(i), names[int(i)], float(v)) for v, i in zip(vs, ix)]
                for p, vs, ix in zip(tensors, values, indices)
            }
        for p in chunk:
            yield Prediction(p, error=errors[p]) if p in errors else Prediction(p, tops[p])
