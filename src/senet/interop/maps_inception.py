"""Key maps between timm's ``inception_resnet_v2`` and ours (``senet.models.inception_resnet``).

timm names modules after TF-slim (``conv2d_1a``, ``mixed_5b``, ``repeat``, ``branch1.0``,
``conv2d``, ``classif``); ours name what they are (``stem.0``, ``stage1``, ``branches.1.0``,
``proj``, ``fc``). ``from_timm_inception_resnet_v2`` renames a timm state dict to ours — by name,
never by position — and ``load_timm_inception_resnet_v2`` loads it into one of our models (plain or
SE: the SE layers, which timm has not, are reported and keep their initialisation).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

_TOP = {
    "conv2d_1a": "stem.0",
    "conv2d_2a": "stem.1",
    "conv2d_2b": "stem.2",
    "conv2d_3b": "stem.4",
    "conv2d_4a": "stem.5",
    "mixed_5b": "mixed_5b",
    "repeat": "stage1",
    "mixed_6a": "reduction_a",
    "repeat_1": "stage2",
    "mixed_7a": "reduction_b",
    "repeat_2": "stage3",
    "block8": "stage3.9",  # the final Block8 (no ReLU) closes our stage3
    "conv2d_7b": "conv_head",
    "classif": "fc",
}
_TOP_RE = re.compile(r"^(" + "|".join(sorted(_TOP, key=len, reverse=True)) + r")\.(.*)$")
_SINGLE_BRANCH = re.compile(r"^branch(\d+)\.(conv|bn)\.(.*)$")  # a branch that is one conv unit
_SEQ_BRANCH = re.compile(r"^branch(\d+)\.(\d+)\.(.*)$")


def timm_to_senet_key(key: str) -> str:
    """Our name for one key of timm's ``inception_resnet_v2`` state dict."""
    m = _TOP_RE.match(key)
    if m is None:
        raise ValueError(f"{key!r} is not a key of timm's inception_resnet_v2")
    top, rest = _TOP[m.group(1)], m.group(2)
    if m.group(1) == "classif":
        return f"{top}.{rest}"
    if m.group(1).startswith("repeat"):  # repeat.<i>.<block key>
        index, rest = rest.split(".", 1)
        top = f"{top}.{index}"
    if (b := _SINGLE_BRANCH.match(rest)) is not None:
        rest = f"branches.{b.group(1)}.0.{b.group(2)}.{b.group(3)}"
    elif (b := _SEQ_BRANCH.match(rest)) is not None:
        rest = f"branches.{b.group(1)}.{b.group(2)}.{b.group(3)}"
    elif rest.startswith("conv2d."):
        rest = "proj." + rest[len("conv2d.") :]
    return f"{top}.{rest}"


def from_timm_inception_resnet_v2(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's ``inception_resnet_v2`` state dict under our key names."""
    return {timm_to_senet_key(k): v for k, v in state.items()}


def load_timm_inception_resnet_v2(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Load timm's weights into our (SE-)Inception-ResNet-v2; returns the keys left as initialised.

    Every converted key must exist in ``model`` with the same shape; only SE-layer keys may be
    missing from ``state`` (timm has no SE version of this network).
    """
    converted = from_timm_inception_resnet_v2(state)
    own = model.state_dict()
    unknown = [k for k in converted if k not in own]
    bad_shape = [
        f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in converted.items()
        if k in own and own[k].shape != v.shape
    ]
    if unknown or bad_shape:
        raise ValueError(
            "these weights do not fit this model (is it inception_resnet_v2 with the same "
            f"num_classes?): unexpected {unknown[:5]}, shape mismatches {bad_shape[:5]}"
        )
    missing = [k for k in own if k not in converted]
    non_se = [k for k in missing if ".se." not in k]
    if non_se:
        raise ValueError(f"timm state dict lacks {len(non_se)} non-SE weights, e.g. {non_se[:5]}")
    model.load_state_dict(converted, strict=False)
    return missing
