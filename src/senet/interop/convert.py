"""Key maps from other libraries' checkpoints to senet's, and the layout each one implies.

Three sources are understood (``source=``):

- ``"original"``: the released SENets as converted to PyTorch (Cadene's ``pretrainedmodels``, the
  same files timm's ``legacy_*`` models load). Keys ``layer0.conv1``/``layer0.bn1`` (a deep
  ``layer0.conv1..bn3`` stem for SENet-154), ``layerX.Y.se_module.fc1``, ``last_linear``. These
  models put the ResNet bottleneck's stride in the first 1×1 and use a ceil-mode stem max-pool:
  our ``layout="caffe"`` (the default).
- ``"timm"``: timm's modern ``resnet*``/``seresnet*``/``seresnext*``. Same key names as ours, but
  stride in the 3×3 and a padded max-pool (``layout="torchvision"``), and SE widths rounded with
  ``make_divisible(C/16, 8)`` (``se_divisor=8``; only SE-ResNet-18/34 differ from C//16).
- ``"torchvision"``: torchvision's ``resnet*``/``resnext*``. Same key names as ours,
  ``layout="torchvision"``.

The trap (PAPER.md): the original release's weights and timm's ``seresnet50`` have tensors of
identical shapes in the same order, so a positional copy "works" and computes a different function.
Conversion here is by name only, and the options a source implies (the layout) travel with the
converted weights in their metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from senet.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401  (re-exported)
from senet.interop.maps_inception import from_timm_inception_resnet_v2
from senet.models.registry import get_entry

Source = Literal["original", "timm", "torchvision"]
SOURCES: tuple[str, ...] = ("original", "timm", "torchvision")


# original release → senet, applied to key prefixes / infixes
_ORIGINAL_STEM = {"layer0.conv1.": "conv1.", "layer0.bn1.": "bn1."}
# SENet-154's deep stem: three 3×3 convs with BN+ReLU; ours is one nn.Sequential ``conv1``
# (conv, bn, relu, conv, bn, relu, conv) followed by ``bn1``.
_ORIGINAL_DEEP_STEM = {
    "layer0.conv1.": "conv1.0.",
    "layer0.bn1.": "conv1.1.",
    "layer0.conv2.": "conv1.3.",
    "layer0.bn2.": "conv1.4.",
    "layer0.conv3.": "conv1.6.",
    "layer0.bn3.": "bn1.",
}


@dataclass
class Conversion:
    """A state dict in senet's key names plus the build options its source implies."""

    state: dict[str, torch.Tensor]
    source: str
    options: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    renamed: int = 0  # how many keys changed name


def strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop wrapper prefixes (``module.`` from DataParallel/DDP, ``_orig_mod.`` from torch.compile)."""
    out = dict(state)
    for prefix in ("module.", "_orig_mod."):
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix) :]: v for k, v in out.items()}
    return out


def looks_original(keys: list[str] | set[str]) -> bool:
    """True when key names are the original release's (``layer0.*``, ``se_module``, ``last_linear``)."""
    return any(k.startswith(("layer0.", "last_linear.")) or ".se_module." in k for k in keys)


def detect_source(state: Mapping[str, torch.Tensor], has_se: bool) -> str:
    """Guess the source from key names: original-release names, else timm (SE) / torchvision."""
    if looks_original(list(state)):
        return "original"
    return "timm" if has_se else "torchvision"


def source_options(source: str, has_se: bool) -> dict[str, Any]:
    """The build options under which a ``source`` checkpoint computes the function it was trained as."""
    if source == "original":
        return {"layout": "caffe"}
    if source == "timm":
        return {"layout": "torchvision", **({"se_divisor": 8} if has_se else {})}
    if source == "torchvision":
        return {"layout": "torchvision"}
    raise ValueError(
        f"source {source!r} is not supported; choose one of {', '.join(SOURCES)} or auto"
    )


def _rename_original(key: str, deep_stem: bool) -> str:
    stem = _ORIGINAL_DEEP_STEM if deep_stem else _ORIGINAL_STEM
    for old, new in stem.items():
        if key.startswith(old):
            return new + key[len(old) :]
    if key.startswith("last_linear."):
        return "fc." + key[len("last_linear.") :]
    return key.replace(".se_module.", ".se.")


def convert_state_dict(
    state: Mapping[str, torch.Tensor], source: str = "auto", *, has_se: bool = True
) -> Conversion:
    """Rename ``state`` from ``source``'s keys to senet's and say which options it needs.

    ``source="auto"`` reads the key names (``detect_source``). ``source="original"`` on a checkpoint
    without the original release's key names is refused: its layout cannot be the release's.
    """
    state = strip_prefix(state)
    keys = list(state)
    if source == "auto":
        source = detect_source(state, has_se)
    options = source_options(source, has_se)
    if source == "original":
        if not looks_original(keys):
            raise ValueError(
                "checkpoint does not use the original release's key names (layer0.conv1, "
                "se_module, last_linear) but timm/torchvision ones (conv1, se, fc); its layout is "
                "not the release's, so convert it with --from timm or --from torchvision"
            )
        if "layer1.0.conv2.weight" in state and "layer1.0.conv3.weight" not in state:
            raise ValueError(
                "checkpoint has original-release key names on basic blocks (SE-ResNet-18/34): "
                "those are timm's own legacy_seresnet18/34, not released SENets, and apply a ReLU "
                "before the SE block that the paper's (and senet's) basic block does not have, so "
                "they cannot be loaded exactly; the release has no SE-ResNet-18/34"
            )
        deep = "layer0.conv3.weight" in state
        new = {_rename_original(k, deep): v for k, v in state.items()}
    else:
        if looks_original(keys):
            raise ValueError(
                f"checkpoint uses the original release's key names (layer0.*, se_module, last_linear), "
                f"not {source}'s; convert it with --from original (stride-in-1×1 'caffe' layout)"
            )
        new = dict(state)
    renamed = sum(1 for a, b in zip(state, new) if a != b)
    fc = new.get("fc.weight", new.get("classifier.6.weight"))  # ResNets; VGG (torchvision's names)
    num_classes = int(fc.shape[0]) if fc is not None and fc.ndim == 2 else None
    return Conversion(new, source, options, num_classes, renamed)


def convert_for_model(
    state: Mapping[str, torch.Tensor], model: str, source: str = "auto"
) -> Conversion:
    """``convert_state_dict`` for the registered network ``model``.

    timm's ``inception_resnet_v2`` (TF-slim names) is renamed by ``maps_inception``. The options a
    source implies (layout, timm's SE rounding) apply to the residual family only.
    """
    entry = get_entry(model)
    state = strip_prefix(state)
    if "conv2d_1a.conv.weight" in state and source in ("auto", "timm"):
        new = from_timm_inception_resnet_v2(state)
        fc = new.get("fc.weight")
        return Conversion(new, "timm", {}, int(fc.shape[0]) if fc is not None else None, len(new))
    conv = convert_state_dict(state, source, has_se=entry.has_se)
    if "layout" not in entry.options:
        # the layout and timm's SE rounding describe timm/torchvision's residual networks; other
        # families have no such counterpart, so their state dicts imply no options
        conv.options = {}
    return conv


def fill_batch_counters(
    state: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> list[str]:
    """Add the ``num_batches_tracked`` buffers that old checkpoints (Cadene's, 2017) do not have."""
    added = []
    for key, ref in expected.items():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(ref)
            added.append(key)
    return added


@dataclass
class ConvertReport:
    """What ``convert_file`` wrote."""

    dst: Path
    model: str
    source: str
    options: dict[str, Any]
    num_classes: int
    tensors: int
    renamed: int
    filled: int  # num_batches_tracked buffers added (absent from 2017-era checkpoints)
