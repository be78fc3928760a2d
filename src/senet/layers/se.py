"""The Squeeze-and-Excitation block and every variant the paper studies (Sec. 3, Sec. 6).

``SqueezeExcitation`` squeezes a feature map ``U`` (N×C×H×W) to a channel descriptor, excites it
through ``FC(C→C/r) → ReLU → FC(C/r→C) → gate`` and rescales ``U`` channel by channel:

    z = squeeze(U)            # avg (paper) or max pooling over H×W; none for NoSqueeze
    s = gate(W2 δ(W1 z + b1) + b2)
    out = s · U

Hidden width (the rounding policy): ``hidden = floor(C / r)``, optionally rounded to a multiple of
``divisor`` the way timm does (``divisor=8``), and never below ``min_channels`` when a floor is set.
With the defaults (``divisor=1``, ``min_channels=None``) the width is exactly ``C // r`` — the
paper's and the original release's rule (SE-BN-Inception's 1056 → 66 needs it) — and a reduction
that leaves no hidden channel is an error rather than a silent change of the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Literal, get_args

import torch
from torch import nn

from senet.layers import ops
from senet.utils.names import did_you_mean

Squeeze = Literal["avg", "max", "none"]
Gate = Literal["sigmoid", "tanh", "relu"]
Integration = Literal["standard", "pre", "post", "identity", "3x3"]

SQUEEZE_OPS: tuple[str, ...] = get_args(Squeeze)
GATES: tuple[str, ...] = get_args(Gate)
INTEGRATIONS: tuple[str, ...] = get_args(Integration)


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {', '.join(allowed)}")


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (timm's rule, ``round_limit=0``)."""
    min_value = min_value or divisor
    return max(min_value, int(value + divisor / 2) // divisor * divisor)


def se_hidden_channels(
    channels: int, reduction: float, divisor: int = 1, min_channels: int | None = None
) -> int:
    """Width of the SE bottleneck for ``channels`` inputs (see the module docstring)."""
    if channels < 1:
        raise ValueError(f"channels={channels} must be a positive integer")
    if not reduction >= 1:
        raise ValueError(f"reduction={reduction} must be ≥ 1 (the paper uses r ∈ {{2,4,8,16,32}})")
    if divisor < 1:
        raise ValueError(f"divisor={divisor} must be ≥ 1 (1 = exact C // r; timm uses 8)")
    if divisor > 1:
        return make_divisible(channels / reduction, divisor, min_channels)
    hidden = math.floor(channels / reduction)
    if min_channels is not None:
        if min_channels < 1:
            raise ValueError(f"min_channels={min_channels} must be ≥ 1 or None")
        hidden = max(hidden, min_channels)
    if hidden < 1:
        raise ValueError(
            f"reduction={reduction} leaves no hidden channel for {channels} input channels "
            f"(floor({channels}/{reduction}) = 0); use reduction ≤ {channels}, "
            "or set min_channels=1 to keep at least one"
        )
    return hidden


@dataclass(frozen=True)
class SEConfig:
    """Options of an SE block, shared by every SE network (``create_model(..., reduction=8)``).

    The one list of the SE options: a network takes them under the public names of ``OPTIONS``
    (``se_bias=False``), a block under the field names (``bias=False``); ``from_options`` maps the
    first to the second. ``se_stages`` (which stages get SE blocks) is a network option, not a
    block's: ``senet.models.registry.SE_OPTIONS`` is this list plus ``se_stages``.

    ``bias``: the paper's ablations (Sec. 6) drop the FC biases; the released Caffe models and
    their PyTorch conversions keep them, so ``True`` is the default.
    ``integration`` says where a residual block puts its SE block (Fig. 5, Table 14–15); it is
    ignored by the SE block itself.
    """

    reduction: float = 16
    squeeze: Squeeze = "avg"
    gate: Gate = "sigmoid"
    bias: bool = True
    divisor: int = 1
    min_channels: int | None = None
    integration: Integration = "standard"

    #: public option name (``create_model(name, se_bias=False)``) → field
    OPTIONS: ClassVar[dict[str, str]] = {
        "reduction": "reduction",
        "squeeze": "squeeze",
        "gate": "gate",
        "se_bias": "bias",
        "se_divisor": "divisor",
        "se_min_channels": "min_channels",
        "integration": "integration",
    }

    def __post_init__(self) -> None:
        _check_choice("squeeze", self.squeeze, SQUEEZE_OPS)
        _check_choice("gate", self.gate, GATES)
        _check_choice("integration", self.integration, INTEGRATIONS)
        if not isinstance(self.bias, bool):
            raise ValueError(f"se_bias={self.bias!r} must be True or False")
        if isinstance(self.reduction, bool) or not isinstance(self.reduction, int | float):
            raise ValueError(f"reduction={self.reduction!r} must be a number ≥ 1 (the paper: 16)")
        if not _is_int(self.divisor):
            raise ValueError(f"se_divisor={self.divisor!r} must be an integer ≥ 1 (timm uses 8)")
        if self.min_channels is not None and not _is_int(self.min_channels):
            raise ValueError(f"se_min_channels={self.min_channels!r} must be an integer or None")
        # validates reduction/divisor/min_channels once, at construction
        se_hidden_channels(max(1, math.ceil(self.reduction)), self.reduction, self.divisor, 1)

    @classmethod
    def from_options(cls, **options: Any) -> SEConfig:
        """The config of a network's public SE options (``reduction=8, se_bias=False``)."""
        return cls(**_renamed(options, cls.OPTIONS, "SE option"))

    @classmethod
    def from_fields(cls, **values: Any) -> SEConfig:
        """The config of field values (``reduction=8, bias=False``), unknown names refused."""
        names = {f.name: f.name for f in fields(cls)}
        return cls(**_renamed(values, names, "SqueezeExcitation option"))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each public option's default (``{"reduction": 16, ..., "se_bias": True, ...}``)."""
        default = {f.name: f.default for f in fields(cls)}
        return {option: default[name] for option, name in cls.OPTIONS.items()}

    def hidden(self, channels: int) -> int:
        return se_hidden_channels(channels, self.reduction, self.divisor, self.min_channels)

    def replace(self, **changes: object) -> SEConfig:
        return replace(self, **changes)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _renamed(values: dict[str, Any], names: dict[str, str], what: str) -> dict[str, Any]:
    """``values`` with keys renamed by ``names``; an unknown key raises with the close names."""
    for key in values:
        if key not in names:
            hint = did_you_mean(key, list(names))
            raise ValueError(f"unknown {what} {key!r}; {hint}the options are {', '.join(names)}")
    return {names[k]: v for k, v in values.items()}


class SqueezeExcitation(nn.Module):
    """SE block (Sec. 3, Fig. 1): ``out = U · gate(W2 δ(W1 squeeze(U)))``.

    The two FC layers are stored as 1×1 convolutions ``fc1``/``fc2`` (the layout of the original
    release, timm and torchvision), so released weights load without reshaping. With
    ``squeeze="none"`` (NoSqueeze, Table 16) they run as real 1×1 convolutions on the full map and
    the gate has the input's spatial size.

    Contract: every gate is computed by ``excite(z)`` (avg/max squeeze; ``excitation(x)`` pools,
    then calls it; the fused training path ``ops.squeeze_excite`` calls it on its own pooled
    ``z``, float32 on the fast path) or by ``excitation(x)`` for NoSqueeze, and both pass ``s``
    through ``self.gate_out``, so a forward hook on ``gate_out`` records ``s`` without changing
    the model. Without gradients, the fused path calls ``excitation(x)``.
    """

    #: ``excite`` is this class's own: the fast path may run the block as the native C++ node,
    #: which computes exactly that excitation (a subclass overriding ``excite`` gets False)
    standard_excite: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.standard_excite = cls.excite is SqueezeExcitation.excite

    def __init__(self, channels: int, reduction: float = 16, **options: Any) -> None:
        """``options``: the other ``SEConfig`` fields (squeeze, gate, bias, divisor, min_channels)."""
        super().__init__()
        cfg = SEConfig.from_fields(reduction=reduction, **options)
        self.channels = channels
        self.hidden = cfg.hidden(channels)
        self.reduction = cfg.reduction
        self.squeeze = cfg.squeeze
        self.gate = cfg.gate
        self.fc1 = nn.Conv2d(channels, self.hidden, 1, bias=cfg.bias)
        self.fc2 = nn.Conv2d(self.hidden, channels, 1, bias=cfg.bias)
        # Hook point: forward hooks on ``gate_out`` see the excitation s (analysis, Figs. 6–7).
        self.gate_out = nn.Identity()

    @classmethod
    def from_config(cls, channels: int, cfg: SEConfig) -> SqueezeExcitation:
        return cls(channels, **{f.name: getattr(cfg, f.name) for f in fields(cfg)})

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """The gate ``s`` for input ``x``: N×C×1×1, or N×C×H×W for NoSqueeze."""
        if self.squeeze == "none":
            h = nn.functional.relu(self.fc1(x))
            return self.gate_out(ops.apply_gate(self.fc2(h), self.gate))
        return ops.excitation(self, x)

    def excite(self, z: torch.Tensor) -> torch.Tensor:
        """The gate ``s`` (N×C×1×1) from an already squeezed descriptor ``z`` (N×C×1×1 or N×C).

        ``excitation`` calls it after pooling; inference rewrites that obtain ``z`` more cheaply
        (``senet.layers.fuse.squeeze_early``) call it directly, so ``gate_out`` hooks still fire.
        """
        if self.squeeze == "none":
            raise ValueError("a NoSqueeze block has no descriptor z; call excitation(x)")
        z = z.reshape(z.shape[0], -1, 1, 1)
        return self.gate_out(ops.excite_block(self, z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.squeeze_excite(self, x)

    def extra_repr(self) -> str:
        return (
            f"{self.channels}→{self.hidden}→{self.channels}, squeeze={self.squeeze}, "
            f"gate={self.gate}, bias={self.fc1.bias is not None}"
        )
