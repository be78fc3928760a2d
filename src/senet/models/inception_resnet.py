"""Inception-ResNet-v2 and SE-Inception-ResNet-v2 (Table 2, 299×299 input; Fig. 3's residual SE).

The network is Szegedy et al.'s Inception-ResNet-v2 as TF-slim trained it and timm ports it
(``inception_resnet_v2``): a valid-padded stem, Mixed-5b, 10 × Block35 (scale 0.17), Reduction-A
(Mixed-6a), 20 × Block17 (0.10), Reduction-B (Mixed-7a), 9 × Block8 (0.20) plus a final Block8
without ReLU (scale 1.0), a 1×1 conv to 1536 channels and one FC layer; BN eps 1e-3, biased 1×1
up-projections. Our module names differ from timm's (``stem``, ``stage1..3``, ``reduction_a/b``,
``branches``, ``proj``); ``senet.interop.maps_inception`` maps timm's weights to ours.

SE: in every residual block (the three ``stage`` groups, 40 blocks) the SE block rescales the
residual branch — the up-projected concatenation — before it is scaled and added to the shortcut
(``integration="standard"``, the SE-ResNet placement of Fig. 3). SE is applied to the branch before
the constant residual scale, so its squeeze sees the unscaled branch. ``integration`` also offers
``pre`` (on the block input, branches only), ``post`` (after the sum and ReLU) and ``identity``
(on the shortcut); the stem and the reduction modules have no SE block.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from senet.layers.se import SEConfig, SqueezeExcitation
from senet.models._common import ClassifierModel, ConvBNAct, check_se_stages, init_weights
from senet.models.registry import PaperRef, register_pair

Conv = partial(ConvBNAct, eps=1e-3)  # TF-slim's BN epsilon
INTEGRATIONS_IRV2 = ("standard", "pre", "post", "identity")


def _seq(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers)


class InceptionConcat(nn.Module):
    """Parallel branches concatenated on channels (Mixed-5b, Reduction-A, Reduction-B)."""

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


class InceptionResidual(nn.Module):
    """``act(shortcut + scale · SE(proj(concat(branches))))``: Block35/17/8 with an SE block."""

    def __init__(
        self,
        channels: int,
        branches: list[nn.Module],
        concat_channels: int,
        scale: float,
        relu: bool = True,
        se: SEConfig | None = None,
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.proj = nn.Conv2d(concat_channels, channels, 1)
        self.scale = scale
        self.relu = relu
        self.integration = None if se is None else se.integration
        self.se = None if se is None else SqueezeExcitation.from_config(channels, se)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.integration
        shortcut = self.se(x) if mode == "identity" else x
        inp = self.se(x) if mode == "pre" else x
        out = self.proj(torch.cat([b(inp) for b in self.branches], 1))
        if mode == "standard":
            out = self.se(out)
        out = shortcut + self.scale * out
        if self.relu:
            out = torch.relu(out)
        return self.se(out) if mode == "post" else out


def block35(se: SEConfig | None) -> InceptionResidual:
    branches = [
        _seq(Conv(320, 32)),
        _seq(Conv(320, 32), Conv(32, 32, 3, 1, 1)),
        _seq(Conv(320, 32), Conv(32, 48, 3, 1, 1), Conv(48, 64, 3, 1, 1)),
    ]
    return InceptionResidual(320, branches, 128, 0.17, se=se)


def block17(se: SEConfig | None) -> InceptionResidual:
    branches = [
        _seq(Conv(1088, 192)),
        _seq(Conv(1088, 128), Conv(128, 160, (1, 7), 1, (0, 3)), Conv(160, 192, (7, 1), 1, (3, 0))),
    ]
    return InceptionResidual(1088, branches, 384, 0.10, se=se)


def block8(se: SEConfig | None, scale: float = 0.20, relu: bool = True) -> InceptionResidual:
    branches = [
        _seq(Conv(2080, 192)),
        _seq(Conv(2080, 192), Conv(192, 224, (1, 3), 1, (0, 1)), Conv(224, 256, (3, 1), 1, (1, 0))),
    ]
    return InceptionResidual(2080, branches, 448, scale, relu=relu, se=se)


def mixed_5b() -> InceptionConcat:
    return InceptionConcat(
        [
            _seq(Conv(192, 96)),
            _seq(Conv(192, 48), Conv(48, 64, 5, 1, 2)),
            _seq(Conv(192, 64), Conv(64, 96, 3, 1, 1), Conv(96, 96, 3, 1, 1)),
            _seq(nn.AvgPool2d(3, 1, 1, count_include_pad=False), Conv(192, 64)),
        ]
    )


def reduction_a() -> InceptionConcat:
    return InceptionConcat(
        [
            _seq(Conv(320, 384, 3, 2)),
            _seq(Conv(320, 256), Conv(256, 256, 3, 1, 1), Conv(256, 384, 3, 2)),
            _seq(nn.MaxPool2d(3, 2)),
        ]
    )


def reduction_b() -> InceptionConcat:
    return InceptionConcat(
        [
            _seq(Conv(1088, 256), Conv(256, 384, 3, 2)),
            _seq(Conv(1088, 256), Conv(256, 288, 3, 2)),
            _seq(Conv(1088, 256), Conv(256, 288, 3, 1, 1), Conv(288, 320, 3, 2)),
            _seq(nn.MaxPool2d(3, 2)),
        ]
    )


class InceptionResNetV2(ClassifierModel):
    """Inception-ResNet-v2 (Szegedy et al. 2017) with optional SE in its residual blocks."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        se: SEConfig | None = None,
        se_stages: int | tuple[int, ...] | None = None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        se_stages = check_se_stages(se_stages, 3)
        if se is not None and se.integration not in INTEGRATIONS_IRV2:
            raise ValueError(
                f"integration={se.integration!r} does not apply to Inception-ResNet-v2 (its residual "
                f"branches have no single 3×3 convolution); choose one of {', '.join(INTEGRATIONS_IRV2)}"
            )
        se1, se2, se3 = (se if i in se_stages else None for i in (1, 2, 3))
        self.stem = nn.Sequential(
            Conv(in_chans, 32, 3, 2),
            Conv(32, 32, 3),
            Conv(32, 64, 3, 1, 1),
            nn.MaxPool2d(3, 2),
            Conv(64, 80),
            Conv(80, 192, 3),
            nn.MaxPool2d(3, 2),
        )
        self.mixed_5b = mixed_5b()
        self.stage1 = nn.Sequential(*[block35(se1) for _ in range(10)])
        self.reduction_a = reduction_a()
        self.stage2 = nn.Sequential(*[block17(se2) for _ in range(20)])
        self.reduction_b = reduction_b()
        self.stage3 = nn.Sequential(
            *[block8(se3) for _ in range(9)], block8(se3, scale=1.0, relu=False)
        )
        self.conv_head = Conv(2080, 1536)
        self.feature_info = [
            {"module": "stem.2", "num_chs": 64, "reduction": 2},
            {"module": "stem.5", "num_chs": 192, "reduction": 4},
            {"module": "stage1", "num_chs": 320, "reduction": 8},
            {"module": "stage2", "num_chs": 1088, "reduction": 16},
            {"module": "conv_head", "num_chs": 1536, "reduction": 32},
        ]
        self._make_head(1536, num_classes, drop_rate)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``conv_head``'s output (N × 1536 × 8 × 8 at 299)."""
        x = self.stage1(self.mixed_5b(self.stem(x)))
        x = self.stage2(self.reduction_a(x))
        return self.conv_head(self.stage3(self.reduction_b(x)))


def _register() -> None:
    # Sec. 5.1: trained on 299×299 crops, evaluated on the centre 299 of the shorter side at 352
    sizes = {"input_size": 299, "eval_input_size": 299, "eval_resize": 352, "min_input_size": 75}
    register_pair(
        "inception_resnet_v2",
        "se_inception_resnet_v2",
        InceptionResNetV2,
        plain_paper=PaperRef(11.75, None, 20.37, 5.21, "Table 2"),
        se_paper=PaperRef(11.76, None, 19.80, 4.79, "Table 2"),
        description="Inception-ResNet-v2 (TF-slim/timm layout), 299×299",
        se_description="SE-Inception-ResNet-v2: SE on each residual branch",
        family="inception_resnet",
        **sizes,
    )


_register()
