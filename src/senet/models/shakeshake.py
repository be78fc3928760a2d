"""Shake-Shake 26 2×96d and SE-Shake-Shake for CIFAR (Tables 4–5; Gastaldi 2017).

The network is Gastaldi's CIFAR-10 model (``xgastaldi/shake-shake``, ``shakeshake.lua`` and
``shakeshakeblock.lua``): a 3×3 convolution to 16 channels and BN (no ReLU), three stages of four
blocks with 96, 192 and 384 channels (strides 1, 2, 2), then ReLU, global average pooling and one
FC layer. Depth 26 = 3 stages × 4 blocks × 2 convolutions + 2. Each block sums its shortcut with
two residual branches, each ``ReLU → conv3×3 → BN → ReLU → conv3×3 → BN``, mixed by Shake-Shake
(below). Where the width changes, the shortcut is ``ReLU`` then two paths concatenated and
batch-normalised: path 1 subsamples with stride 2 (a 1×1 average pool) and applies a 1×1
convolution to half the output channels; path 2 does the same on the input shifted one pixel right
and down (``SpatialZeroPadding(1, -1, 1, -1)``), so it sees the pixels path 1 skips. Convolutions
have no bias (cuDNN ≥ 4 in the original code removes them); the FC bias starts at zero.

Shake-Shake-Image ("S-S-I", the 26 2×96d CIFAR-10 setting): in training each image draws its own
``α ~ U(0, 1)`` for the forward pass, ``α·b₁ + (1 − α)·b₂``, and an independent ``β ~ U(0, 1)``
that replaces α in the backward pass (the gradient reaching b₁ is ``β·g``, b₂'s ``(1 − β)·g``);
evaluation uses 0.5 for both. The branches start with the same ReLU of the block input, computed
once (the original's in-place ReLU has the same effect); an identity shortcut takes the raw input.

SE: one SE block on each residual branch, after its last BN and before the Shake-Shake mix, as the
paper integrates SE into residual branches (Fig. 3) — 2 per block, 24 in all.

Parameters: 26,192,922 (Gastaldi's Table: 26.2 M) and 26,392,170 with SE (r = 16, FC biases).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from senet.layers.se import SEConfig, SqueezeExcitation
from senet.models._common import ClassifierModel, check_se_stages, init_weights
from senet.models.blocks import conv1x1, conv3x3
from senet.models.registry import CIFAR10_ENTRY, NO_INTEGRATION, PaperRef, register_pair


class _ShakeShakeMix(torch.autograd.Function):
    """``α·a + (1 − α)·b`` forward; gradients ``β·g`` and ``(1 − β)·g`` backward."""

    @staticmethod
    def forward(
        ctx: Any, a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(beta)
        return torch.lerp(b, a, alpha)  # b + α (a − b)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (beta,) = ctx.saved_tensors
        ga = grad * beta
        return ga, grad - ga, None, None


def shake_shake(
    a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor
) -> torch.Tensor:
    """Mix two branches with ``alpha`` forward and ``beta`` backward (shapes broadcast to a's)."""
    return _ShakeShakeMix.apply(a, b, alpha, beta)


class ShakeShake(nn.Module):
    """The Shake-Shake-Image mix: per-image α (forward) and β (backward) in training, 0.5 in eval.

    Each training call draws ``α = rand(N)`` then ``β = rand(N)`` from torch's default generator
    (on the input's device), in that order.
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (a + b) * 0.5
        shape = (a.shape[0],) + (1,) * (a.dim() - 1)
        alpha = torch.rand(shape, device=a.device, dtype=a.dtype)
        beta = torch.rand(shape, device=a.device, dtype=a.dtype)
        return shake_shake(a, b, alpha, beta)


class ShiftedPairShortcut(nn.Module):
    """Shake-Shake's projection shortcut: two strided 1×1 paths, the second shifted one pixel."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        if cout % 2:
            raise ValueError(
                f"the two shortcut paths split {cout} channels in halves: use an even width"
            )
        self.stride = stride
        self.conv1 = conv1x1(cin, cout // 2)
        self.conv2 = conv1x1(cin, cout // 2)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h``: the block input after its ReLU."""
        s = self.stride
        shifted = F.pad(h, (1, -1, 1, -1))  # right and down by one pixel, zeros enter top/left
        paths = [self.conv1(h[:, :, ::s, ::s]), self.conv2(shifted[:, :, ::s, ::s])]
        return self.bn(torch.cat(paths, 1))


def _branch(cin: int, cout: int, stride: int) -> nn.Sequential:
    """conv3×3 → BN → ReLU → conv3×3 → BN (the branch's leading ReLU is the block's)."""
    return nn.Sequential(
        conv3x3(cin, cout, stride),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        conv3x3(cout, cout),
        nn.BatchNorm2d(cout),
    )


class ShakeShakeBlock(nn.Module):
    """``shortcut(x) + ShakeShake(SE(branch1(relu x)), SE(branch2(relu x)))``."""

    def __init__(self, cin: int, cout: int, stride: int, se: SEConfig | None = None) -> None:
        super().__init__()
        self.branch1 = _branch(cin, cout, stride)
        self.branch2 = _branch(cin, cout, stride)
        self.se1 = None if se is None else SqueezeExcitation.from_config(cout, se)
        self.se2 = None if se is None else SqueezeExcitation.from_config(cout, se)
        self.shortcut = (
            None if cin == cout and stride == 1 else ShiftedPairShortcut(cin, cout, stride)
        )
        self.mix = ShakeShake()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x)
        shortcut = x if self.shortcut is None else self.shortcut(h)
        a, b = self.branch1(h), self.branch2(h)
        if self.se1 is not None:
            a, b = self.se1(a), self.se2(b)
        return shortcut + self.mix(a, b)


class ShakeShakeResNet(ClassifierModel):
    """Gastaldi's CIFAR Shake-Shake ResNet, ``depth`` = 6·n + 2, widths ``width``·(1, 2, 4)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        se: SEConfig | None = None,
        se_stages: int | tuple[int, ...] | None = None,
        depth: int = 26,
        width: int = 96,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"depth={depth} must be 6·n + 2 with n ≥ 1 (26: 4 blocks per stage)")
        se_stages = check_se_stages(se_stages, 3)
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = conv3x3(in_chans, 16)
        self.bn1 = nn.BatchNorm2d(16)
        cin, reduction = 16, 1
        self.feature_info: list[dict[str, object]] = []
        for i, (cout, stride) in enumerate([(width, 1), (2 * width, 2), (4 * width, 2)], start=1):
            stage_se = se if i in se_stages else None
            blocks = []
            for j in range(blocks_per_stage):
                blocks.append(ShakeShakeBlock(cin, cout, stride if j == 0 else 1, stage_se))
                cin = cout
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
            reduction *= stride
            self.feature_info.append(
                {"module": f"layer{i}", "num_chs": cout, "reduction": reduction}
            )
        self._make_head(cin, num_classes)
        init_weights(self, linear_std=None)  # He (fan-out) convolutions, as the original
        if isinstance(self.fc, nn.Linear):
            nn.init.zeros_(self.fc.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output after the final ReLU (N × 4·width × H/4 × W/4)."""
        x = self.bn1(self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return F.relu(x)


def cifar_shakeshake26_2x96d(
    num_classes: int = 10,
    in_chans: int = 3,
    se: SEConfig | None = None,
    se_stages: int | tuple[int, ...] | None = None,
) -> ShakeShakeResNet:
    """Shake-Shake 26 2×96d, the Tables 4–5 network (its depth and width are not options)."""
    return ShakeShakeResNet(num_classes, in_chans, se, se_stages, depth=26, width=96)


def _register() -> None:
    # Tables 4–5 (with Cutout): CIFAR-10 2.56 → 2.12, CIFAR-100 15.85 → 15.41 % top-1 error
    register_pair(
        "cifar_shakeshake26_2x96d",
        "cifar_se_shakeshake26_2x96d",
        cifar_shakeshake26_2x96d,
        plain_paper=PaperRef(None, 26.2, 2.56, None, "Tables 4–5", cifar100_top1_err=15.85),
        se_paper=PaperRef(None, None, 2.12, None, "Tables 4–5", cifar100_top1_err=15.41),
        description="Shake-Shake 26 2×96d (Shake-Shake-Image), trained with Cutout",
        se_description="SE-Shake-Shake 26 2×96d: SE on each residual branch before the mix",
        se_options=NO_INTEGRATION,
        family="cifar_shakeshake",
        **CIFAR10_ENTRY,
    )


_register()
