"""Classify image files with a model or checkpoint: the paper's evaluation transform and top-k.

Evaluation (Sec. 5.1): the weights' ``Preprocessing`` (``senet.data.preprocessing``: resize the
shorter side, centre crop, normalise), the same description ``senet train`` writes and
``senet eval`` reads; class names from the metadata (ImageNet's 1,000 when ``num_classes`` is 1000
and none are stored).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.interop.weights_file import preprocessing_of


@dataclass
class Prediction:
    """Top-k classes of one image, or the reason it could not be classified."""

    path: str
    top: list[tuple[int, str, float]] = field(default_factory=list)  # (index, name, probability)
    error: str | None = None


def load_classifier(model_or_checkpoint: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A model in eval mode and its metadata, from a checkpoint file or a registry name.

    A bare name gives freshly initialised weights (a warning says so): useful for trying the
    pipeline, meaningless as predictions. Without an ``input_size`` in the metadata, the model's
    registered input size is used (224 on ImageNet, 32 for the CIFAR networks).
    """
    from senet.factory import create_model
    from senet.interop.weights_file import load_model
    from senet.models.registry import get_entry, list_models

    path = Path(model_or_checkpoint)
    if path.is_file():
        model = load_model(path)
        meta = dict(getattr(model, "checkpoint_metadata", {}) or {})
    elif str(model_or_checkpoint) in list_models():
        model = create_model(str(model_or_checkpoint))
        meta = {"model": str(model_or_checkpoint), "num_classes": model.num_classes}
        print(
            f"warning: {model_or_checkpoint} has random weights (no checkpoint given); "
            "its predictions are meaningless",
            file=sys.stderr,
        )
    elif path.suffix in (".safetensors", ".pt", ".pth"):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    else:
        get_entry(str(model_or_checkpoint))  # raises with the closest names
        raise ValueError(f"{model_or_checkpoint} is neither a file nor a model name")
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


@torch.inference_mode()
def predict(
    model: nn.Module,
    paths: Sequence[str | Path],
    meta: dict[str, Any] | None = None,
    topk: int = 5,
) -> list[Prediction]:
    """Top-``topk`` softmax probabilities for each image; a bad file gets an error, the rest run."""
    meta = meta or {}
    prep = preprocessing_of(meta)
    transform = prep.transform()
    num_classes = int(getattr(model, "num_classes", 0) or meta.get("num_classes") or 0)
    names = class_names(meta, num_classes)
    k = min(topk, num_classes)
    results = []
    for p in paths:
        try:
            x = transform(prep.open_image(p)).unsqueeze(0)
        except ValueError as err:
            results.append(Prediction(str(p), error=str(err)))
            continue
        probs = model(x).softmax(dim=1)[0]
        values, indices = probs.topk(k)
        top = [(int(i), names[int(i)], float(v)) for v, i in zip(values, indices)]
        results.append(Prediction(str(p), top))
    return results
