"""``add_se``: put SE blocks into an existing ResNet-family model (Sec. 3.3, Fig. 5 integration modes).

Each torchvision/timm ``BasicBlock``/``Bottleneck`` (ResNet, ResNeXt, Wide-ResNet; and this
library's own plain residual blocks) is replaced by the matching ``senet.models.blocks`` block that
*reuses the original convolution, BN and downsample modules* — the very same parameter tensors, so
pretrained weights stay untouched — and adds a ``SqueezeExcitation`` at the chosen integration
point. Retrofitted models therefore run the same SE code path as ``senet.create_model("se_...")``,
and a retrofitted torchvision ResNet-50 has exactly the keys and parameters of our ``se_resnet50``
with ``layout="torchvision"``.

Initialisation of the new SE layers (``init``):

- ``"identity"`` (default): ``fc1`` gets He initialisation, ``fc2``'s weights are zero and its
  bias is set so that the gate starts at ``start_gate`` (0.99) for every channel and input. The
  retrofitted network then computes the original one with each SE-scaled tensor multiplied by
  0.99 — close to the pretrained function — like zero-initialising the last BN of a residual
  branch (Goyal et al. 2017). ``fc2`` receives gradients from the first step (``fc1`` from the
  second). The price: a sigmoid gate at 0.99 has a small slope (0.0099), so the SE layers start
  learning slowly under plain SGD; lower ``start_gate`` (e.g. 0.9) trades closeness for speed.
  With ``gate="relu"``, ``start_gate=1.0`` makes the start exact.
- ``"default"``: He initialisation for both layers, as when training an SENet from scratch; the
  gates start near 0.5 with input-dependent noise, so the pretrained function is not preserved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from torch import nn

from senet.layers.se import Gate, Integration, SEConfig, Squeeze, SqueezeExcitation
from senet.models import blocks as senet_blocks

Init = Literal["identity", "default"]

#: modules whose ``BasicBlock``/``Bottleneck`` classes add_se knows
_KNOWN_MODULES = ("torchvision.models.resnet", "timm.models.resnet", "senet.models.blocks")
_KINDS = {"BasicBlock": "basic", "Bottleneck": "bottleneck"}


def _block_kind(module: nn.Module) -> str | None:
    cls = type(module)
    if cls.__module__ in _KNOWN_MODULES and cls.__name__ in _KINDS:
        return _KINDS[cls.__name__]
    return None


def _unsupported_parts(block: nn.Module) -> list[str]:
    """What in a known block our blocks cannot reproduce (timm options, existing attention, ...)."""
    problems = []
    if _block_kind(block) and type(block).__module__ == "senet.models.blocks":
        if getattr(block, "se", None) is not None:
            problems.append("it already has an SE block")
        return problems
    if getattr(block, "se", None) is not None:
        problems.append(f"it already has an attention module ({type(block.se).__name__})")
    for name in ("drop_block", "aa"):
        part = getattr(block, name, None)
        if part is not None and not isinstance(part, nn.Identity):
            problems.append(
                f"its {name} is {type(part).__name__} (anti-aliasing/DropBlock are not supported)"
            )
    if getattr(block, "drop_path", None) is not None:
        problems.append("it uses drop_path (stochastic depth is not supported)")
    for name in ("relu", "act1", "act2", "act3"):
        act = getattr(block, name, None)
        if act is not None and not isinstance(act, nn.ReLU):
            problems.append(f"its activation {name} is {type(act).__name__}, not ReLU")
    return problems


def _find_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Containers holding known blocks, in forward-definition order (torchvision: layer1..4)."""
    stages = []
    for name, module in model.named_modules():
        if _block_kind(module) is None and any(_block_kind(c) for c in module.children()):
            stages.append((name, module))
    return stages


def _block_types(model: nn.Module) -> list[str]:
    """Class names a user would recognise as the model's building blocks."""
    custom = {
        type(m).__name__ for m in model.modules() if not type(m).__module__.startswith("torch.nn")
    }
    custom.discard(type(model).__name__)
    if custom:
        return sorted(custom)
    containers = {"Sequential", "ModuleList", "ModuleDict", type(model).__name__}
    return sorted({type(m).__name__ for m in model.modules()} - containers)


def _convert(block: nn.Module, cfg: SEConfig) -> senet_blocks.ResidualBlock:
    """Our block with SE, reusing ``block``'s convolution, BN and downsample modules."""
    kind = _block_kind(block)
    cin = block.conv1.in_channels
    # the original downsample goes into the constructor so keys keep torchvision's order
    if kind == "basic":
        new: senet_blocks.ResidualBlock = senet_blocks.BasicBlock(
            cin, block.conv2.out_channels, 1, block.downsample, cfg
        )
        parts = ("conv1", "bn1", "conv2", "bn2")
    else:
        cout, width, groups = block.conv3.out_channels, block.conv2.out_channels, block.conv2.groups
        planes = cout // senet_blocks.Bottleneck.expansion
        new = senet_blocks.Bottleneck(
            cin,
            planes,
            1,
            block.downsample,
            cfg,
            groups=groups,
            base_width=round(width * 64 / (planes * groups)),
            first_width_ratio=block.conv1.out_channels / width,
        )
        if new.conv2.out_channels != width:
            raise ValueError(
                f"add_se cannot rebuild a Bottleneck of width {width} (planes {planes}, groups {groups})"
            )
        parts = ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3")
    for name in parts:
        setattr(new, name, getattr(block, name))
    ref = block.conv1.weight
    new.se.to(device=ref.device, dtype=ref.dtype)
    new.train(block.training)
    return new


def _init_se(se: SqueezeExcitation, init: Init, start_gate: float) -> None:
    nn.init.kaiming_normal_(se.fc1.weight, mode="fan_out", nonlinearity="relu")
    if se.fc1.bias is not None:
        nn.init.zeros_(se.fc1.bias)
    if init == "default":
        nn.init.kaiming_normal_(se.fc2.weight, mode="fan_out", nonlinearity="relu")
        if se.fc2.bias is not None:
            nn.init.zeros_(se.fc2.bias)
        return
    nn.init.zeros_(se.fc2.weight)
    inverse = {"sigmoid": lambda p: math.log(p / (1 - p)), "tanh": math.atanh, "relu": lambda p: p}
    nn.init.constant_(se.fc2.bias, inverse[se.gate](start_gate))


def _check_init(init: str, start_gate: float, gate: str, se_bias: bool) -> None:
    if init not in ("identity", "default"):
        raise ValueError(f"init={init!r} is not supported; choose identity or default")
    if init != "identity":
        return
    if not se_bias:
        raise ValueError(
            "init='identity' needs se_bias=True (the gate's start is set by fc2's bias); "
            "use init='default' for bias-free SE layers"
        )
    upper_ok = start_gate <= 1 if gate == "relu" else start_gate < 1
    if not (start_gate > 0 and upper_ok):
        bound = "≤ 1" if gate == "relu" else "< 1"
        raise ValueError(f"start_gate={start_gate} must be > 0 and {bound} for gate={gate!r}")


def add_se(
    model: nn.Module,
    reduction: float = 16,
    mode: Integration = "standard",
    stages: Sequence[int] | None = None,
    squeeze: Squeeze = "avg",
    gate: Gate = "sigmoid",
    se_bias: bool = True,
    se_divisor: int = 1,
    se_min_channels: int | None = None,
    init: Init = "identity",
    start_gate: float = 0.99,
) -> nn.Module:
    """Add SE blocks to ``model``'s residual blocks in place and return it (Sec. 3.3, Fig. 5).

    ``mode`` is the integration point (``standard``, ``pre``, ``post``, ``identity``, ``3x3``);
    ``stages`` picks stages by 1-based position (torchvision/timm ``layer1..layer4`` = 1..4;
    default all). The original layers keep their parameter tensors; see the module docstring for
    ``init`` and ``start_gate``. Raises ``ValueError`` for a model without known blocks.
    """
    cfg = SEConfig.from_options(
        reduction=reduction,
        squeeze=squeeze,
        gate=gate,
        se_bias=se_bias,
        se_divisor=se_divisor,
        se_min_channels=se_min_channels,
        integration=mode,
    )
    _check_init(init, start_gate, gate, se_bias)
    found = _find_stages(model)
    if not found:
        raise ValueError(
            f"add_se does not know how to retrofit {type(model).__name__}: it found no ResNet "
            f"BasicBlock/Bottleneck from torchvision, timm or senet; its block types are: "
            f"{', '.join(_block_types(model)) or 'none'}. For the paper's other networks use "
            "senet.create_model('se_<name>') (senet.list_models(se=True))."
        )
    if isinstance(stages, int):
        stages = (stages,)
    chosen = tuple(range(1, len(found) + 1)) if stages is None else tuple(stages)
    bad = [s for s in chosen if s not in range(1, len(found) + 1)]
    if bad:
        names = ", ".join(f"{i}={n}" for i, (n, _) in enumerate(found, start=1))
        raise ValueError(f"stages={chosen} names stage(s) {bad}; this model has stages {names}")
    todo = [
        (stage, child_name, child)
        for i, (_, stage) in enumerate(found, start=1)
        if i in chosen
        for child_name, child in stage.named_children()
        if _block_kind(child)
    ]
    for _, child_name, child in todo:
        problems = _unsupported_parts(child)
        if problems:
            raise ValueError(
                f"add_se cannot retrofit block {child_name} ({type(child).__module__}."
                f"{type(child).__name__}): {'; '.join(problems)}"
            )
    for stage, child_name, child in todo:
        new = _convert(child, cfg)
        _init_se(new.se, init, start_gate)
        setattr(stage, child_name, new)
    return model
