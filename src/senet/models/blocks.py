"""Residual blocks with an optional SE block at any of the paper's integration points (Fig. 5).

Every block computes ``branch`` (the residual function) and ``shortcut`` and places its SE block
by ``integration``:

- ``standard``: on the branch output, before the sum (Fig. 3; the paper's SE-ResNet)
- ``pre``: on the block input, at the start of the branch (SE-PRE; the shortcut takes the raw input)
- ``post``: after the sum and its ReLU (SE-POST)
- ``identity``: on the shortcut, in parallel with the branch (SE-Identity)
- ``3x3``: after the spatial (3×3, possibly grouped) convolution inside the branch (SE_3×3, Table 15);
  in a basic block, after the first 3×3 convolution.

Pre-activation blocks (ResNet-164, WRN-16-8) follow He et al. (2016): BN-ReLU before each
convolution, and a projection shortcut, where there is one, reads the pre-activated input.

ReLUs that follow a convolution's BN run in place (as torchvision's and timm's do): on CPU a
fresh feature-map allocation costs several passes over it. A pre-activation block's first ReLU
does not, because its input may also be the identity shortcut.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Proxy

from senet.layers import ops
from senet.layers.se import SEConfig, SqueezeExcitation

StrideIn = Literal["1x1", "3x3"]


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


def check_ungrouped(block: str, groups: int, base_width: int) -> None:
    """Blocks without a grouped 3×3 convolution refuse ResNeXt's options (as torchvision's do)."""
    if groups != 1 or base_width != 64:
        raise ValueError(
            f"{block} supports only groups=1 and base_width=64 (got groups={groups}, "
            f"base_width={base_width}); grouped ResNeXt networks use the Bottleneck block"
        )


class ZeroPadShortcut(nn.Module):
    """CIFAR ResNet's option-A shortcut (He et al. 2016, Sec. 4.2): subsample and zero-pad channels."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride, self.pad = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        lo = self.pad // 2
        return F.pad(x, (0, 0, 0, 0, lo, self.pad - lo))


class ResidualBlock(nn.Module):
    """Shared SE placement; subclasses define ``branch`` channels and their layers."""

    expansion = 1
    preact = False

    def _make_se(
        self, se: SEConfig | None, cin: int, mid: int, cout: int
    ) -> tuple[SqueezeExcitation | None, str | None]:
        if se is None:
            return None, None
        channels = {"pre": cin, "3x3": mid}.get(se.integration, cout)
        return SqueezeExcitation.from_config(channels, se), se.integration

    def _se_at(self, point: str, x: torch.Tensor) -> torch.Tensor:
        return self.se(x) if self.integration == point else x

    def _finish(self, out: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """Sum branch and shortcut with the SE block where ``integration`` puts it."""
        mode = self.integration
        if mode in ("standard", "identity"):
            # Axpy: the SE-scaled tensor (branch, or shortcut for SE-Identity) plus the other one,
            # then the ReLU, as one fused op (senet.layers.ops; a sum is the same either way round)
            scaled, other = (out, shortcut) if mode == "standard" else (shortcut, out)
            return ops.squeeze_excite(self.se, scaled, other, relu=not self.preact)
        out = out + shortcut if self.preact else ops.add_relu(out, shortcut)
        return self._se_at("post", out)

    def _bn_finish(self, y: torch.Tensor, bn: nn.Module, shortcut: torch.Tensor) -> torch.Tensor:
        """``_finish(bn(y), shortcut)`` for a post-activation block whose branch ends in ``bn``:
        with the standard SE block, one op that can run the BatchNorm inside the SE block's
        passes (``ops.bn_squeeze_excite``)."""
        if self.integration == "standard":
            return ops.bn_squeeze_excite(self.se, bn, y, shortcut)
        out = bn(y)
        if self.integration is None:
            return ops.add_relu(out, shortcut)
        return self._finish(out, shortcut)


class BasicBlock(ResidualBlock):
    """Two 3×3 convolutions (ResNet-18/34 and the CIFAR ResNets)."""

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        se: SEConfig | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        check_ungrouped(type(self).__name__, groups, base_width)
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.se, self.integration = self._make_se(se, cin, planes, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self._se_at("pre", x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self._se_at("3x3", out)
        return self._bn_finish(self.conv2(out), self.bn2, shortcut)


class Bottleneck(ResidualBlock):
    """1×1 → 3×3 (grouped for ResNeXt) → 1×1 (ResNet-50/101/152, ResNeXt, SENet-154).

    ``stride_in="1x1"`` puts the stride in the first 1×1 convolution, as the original Caffe ResNet
    and the released SE-ResNets do ("follows Caffe implementation", Cadene's port); ``"3x3"`` puts
    it in the 3×3 convolution, as torchvision, timm and the released SE-ResNeXt/SENet-154 do.
    ``first_width_ratio=0.5`` halves the first 1×1's output width (SENet-154, paper appendix).
    """

    expansion = 4

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        se: SEConfig | None = None,
        groups: int = 1,
        base_width: int = 64,
        first_width_ratio: float = 1.0,
        stride_in: StrideIn = "3x3",
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        first = int(width * first_width_ratio)
        cout = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in == "1x1" else (1, stride)
        self.conv1 = conv1x1(cin, first, s1)
        self.bn1 = nn.BatchNorm2d(first)
        self.conv2 = conv3x3(first, width, s3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, cout)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = downsample
        self.se, self.integration = self._make_se(se, cin, width, cout)
        # Inference-only rewrite (senet.layers.fuse.squeeze_early): squeeze conv3's input instead.
        self.early_squeeze = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self._se_at("pre", x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self._se_at("3x3", out)
        if self.early_squeeze:
            if self.training:
                raise RuntimeError(
                    "this block was rewritten for inference (early squeeze, BN folded); "
                    "train the original model, not the output of optimize_for_inference"
                )
            if _early_squeeze_reads_less(out, self.conv3.out_channels):
                return self._forward_early_squeeze(out, shortcut)
        return self._bn_finish(self.conv3(out), self.bn3, shortcut)

    def _forward_early_squeeze(self, h: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """``relu(conv3(h) · s + shortcut)`` with ``z = mean(conv3(h)) = W·mean(h) + b``.

        Exact because conv3 is a 1×1, stride-1, unpadded convolution (BN folded into it): the
        spatial mean commutes with it, so the squeeze reads the width-channel input (a quarter of
        the output's channels) instead of the output.
        """
        z = ops.squeeze_1x1(h, self.conv3.weight, self.conv3.bias)
        s = self.se.excite(z)
        out = self.conv3(h)
        return ops.scale_add_relu(out, s.to(out.dtype), shortcut)


class PreActBasicBlock(ResidualBlock):
    """BN-ReLU-3×3-BN-ReLU-3×3 (wide ResNet, Zagoruyko & Komodakis 2016)."""

    preact = True

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        se: SEConfig | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        check_ungrouped(type(self).__name__, groups, base_width)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.downsample = downsample
        self.se, self.integration = self._make_se(se, cin, planes, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(self._se_at("pre", pre))
        out = self._se_at("3x3", F.relu(self.bn2(out), inplace=True))
        out = self.conv2(out)
        if self.integration is None:
            return out + shortcut
        return self._finish(out, shortcut)


class PreActBottleneck(ResidualBlock):
    """BN-ReLU-1×1, BN-ReLU-3×3, BN-ReLU-1×1 (ResNet-164, He et al. 2016 "Identity Mappings")."""

    expansion = 4
    preact = True

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        se: SEConfig | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        check_ungrouped(type(self).__name__, groups, base_width)
        cout = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = conv1x1(cin, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, cout)
        self.downsample = downsample
        self.se, self.integration = self._make_se(se, cin, planes, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(self._se_at("pre", pre))
        out = self.conv2(F.relu(self.bn2(out), inplace=True))
        out = self._se_at("3x3", F.relu(self.bn3(out), inplace=True))
        out = self.conv3(out)
        if self.integration is None:
            return out + shortcut
        return self._finish(out, shortcut)


BLOCKS: dict[str, type[ResidualBlock]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact_basic": PreActBasicBlock,
    "preact_bottleneck": PreActBottleneck,
}


def _early_squeeze_reads_less(h: torch.Tensor, cout: int) -> bool:
    """Whether squeezing conv3's input ``h`` reads less than squeezing its output.

    Early: the map ``h`` (N·HW·C_in) and conv3's weight as a matrix (C_out·C_in); late: the output
    (N·HW·C_out). At batch 1 the late stages' maps are smaller than their weights (SE-ResNet-50
    stage 4: 49 pixels, C_in 512), so there the ordinary squeeze is cheaper (measured 4–9% of the
    whole forward). Under FX tracing (shapes are proxies) the rewrite is kept as it is.
    """
    if isinstance(h, Proxy):
        return True
    n, cin, hh, ww = h.shape
    nhw = n * hh * ww
    return cin * (nhw + cout) < nhw * cout
