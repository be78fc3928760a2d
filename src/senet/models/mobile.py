"""SE-MobileNet (v1, width 1.0) and SE-ShuffleNet (v1, 1×, g = 3): the paper's mobile setting (Table 3).

MobileNet v1 (Howard et al. 2017): a 3×3/2 stem and 13 depthwise-separable blocks (3×3 depthwise
→ BN → ReLU → 1×1 pointwise → BN → ReLU). The SE block rescales each block's output, after the
pointwise convolution's ReLU (the non-linearity that ends the block, Sec. 3.3). With r = 16 this
adds 0.48 M parameters: 4.23 M → 4.71 M, the paper's 4.2 → 4.7 M.

ShuffleNet v1 (Zhang et al. 2018), 1×, g = 3 (stage widths 240/480/960, 4/8/4 units, bottleneck
width = stage width / 4, no grouping in the very first 1×1): each unit is 1×1 group conv → BN →
ReLU → channel shuffle → 3×3 depthwise (stride) → BN → 1×1 group conv → BN. The SE block
rescales this residual branch before it meets the shortcut — the sum for stride-1 units, the
concatenation with the 3×3/2 average-pooled input for stride-2 units — as in SE-ResNet (Fig. 3).
On the stride-2 units the branch has ``out − in`` channels (216, 240, 480), which is what gives
the paper's 1.8 → 2.4 M parameters.

``se_stages`` counts MobileNet's five resolutions (64, 128, 256, 512, 1024 channels) and
ShuffleNet's three stages.
"""

from __future__ import annotations

import torch
from torch import nn

from senet.layers.se import SEConfig, SqueezeExcitation
from senet.models._common import ClassifierModel, ConvBNAct, check_se_stages, init_weights
from senet.models.registry import NO_INTEGRATION, PaperRef, register_pair

#: (output channels, stride) of MobileNet v1's depthwise-separable blocks, width multiplier 1.0
MOBILENET_V1: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip


class DepthwiseSeparable(nn.Module):
    """3×3 depthwise and 1×1 pointwise convolutions, each with BN and ReLU, then SE."""

    def __init__(self, cin: int, cout: int, stride: int, se: SEConfig | None = None) -> None:
        super().__init__()
        self.dw = ConvBNAct(cin, cin, 3, stride, 1, groups=cin)
        self.pw = ConvBNAct(cin, cout)
        self.se = SqueezeExcitation.from_config(cout, se) if se is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pw(self.dw(x))
        return x if self.se is None else self.se(x)


class MobileNetV1(ClassifierModel):
    """MobileNet v1 with width multiplier 1.0 and optional SE blocks (Table 3)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        se: SEConfig | None = None,
        se_stages: int | tuple[int, ...] | None = None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        se_stages = check_se_stages(se_stages, 5)
        self.stem = ConvBNAct(in_chans, 32, 3, 2, 1)
        blocks, cin, stage, reduction = [], 32, 1, 2
        self.feature_info: list[dict[str, object]] = []
        for i, (cout, stride) in enumerate(MOBILENET_V1):
            if stride == 2:
                self.feature_info.append(
                    {"module": f"blocks.{i - 1}", "num_chs": cin, "reduction": reduction}
                )
                stage, reduction = stage + 1, reduction * 2
            blocks.append(DepthwiseSeparable(cin, cout, stride, se if stage in se_stages else None))
            cin = cout
        self.feature_info.append(
            {"module": f"blocks.{len(blocks) - 1}", "num_chs": cin, "reduction": reduction}
        )
        self.blocks = nn.Sequential(*blocks)
        self._make_head(cin, num_classes, drop_rate)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups (ShuffleNet, Fig. 1)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet v1 unit (Fig. 2b/c) with SE on the residual branch before the sum/concatenation."""

    def __init__(
        self,
        cin: int,
        cout: int,
        mid: int,
        stride: int,
        groups: int,
        first_groups: int | None = None,
        se: SEConfig | None = None,
    ) -> None:
        super().__init__()
        self.stride, self.groups = stride, groups
        branch_out = cout - cin if stride == 2 else cout
        self.conv1 = ConvBNAct(cin, mid, groups=first_groups or groups)
        self.dw = ConvBNAct(mid, mid, 3, stride, 1, groups=mid, act=False)
        self.conv2 = ConvBNAct(mid, branch_out, groups=groups, act=False)
        self.se = SqueezeExcitation.from_config(branch_out, se) if se is not None else None
        self.pool = nn.AvgPool2d(3, 2, 1) if stride == 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        if self.groups > 1:
            out = channel_shuffle(out, self.groups)
        out = self.conv2(self.dw(out))
        if self.se is not None:
            out = self.se(out)
        if self.pool is not None:
            return torch.relu(torch.cat([self.pool(x), out], 1))
        return torch.relu(x + out)


class ShuffleNetV1(ClassifierModel):
    """ShuffleNet v1 (1×, g = 3 by default) with optional SE blocks (Table 3)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        se: SEConfig | None = None,
        se_stages: int | tuple[int, ...] | None = None,
        drop_rate: float = 0.0,
        groups: int = 3,
        widths: tuple[int, ...] = (240, 480, 960),
        depths: tuple[int, ...] = (4, 8, 4),
    ) -> None:
        super().__init__()
        se_stages = check_se_stages(se_stages, len(depths))
        self.stem = nn.Sequential(ConvBNAct(in_chans, 24, 3, 2, 1), nn.MaxPool2d(3, 2, 1))
        cin, reduction = 24, 4
        self.feature_info: list[dict[str, object]] = []
        for i, (width, depth) in enumerate(zip(widths, depths), start=1):
            units = [
                ShuffleUnit(
                    cin if j == 0 else width,
                    width,
                    width // 4,
                    2 if j == 0 else 1,
                    groups,
                    first_groups=1 if (i == 1 and j == 0) else None,
                    se=se if i in se_stages else None,
                )
                for j in range(depth)
            ]
            self.add_module(f"stage{i}", nn.Sequential(*units))
            cin, reduction = width, reduction * 2
            self.feature_info.append(
                {"module": f"stage{i}", "num_chs": width, "reduction": reduction}
            )
        self.num_stages = len(depths)
        self._make_head(cin, num_classes, drop_rate)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"stage{i}")(x)
        return x


def shufflenet_v1_g3(
    num_classes: int = 1000,
    in_chans: int = 3,
    se: SEConfig | None = None,
    se_stages: int | tuple[int, ...] | None = None,
    drop_rate: float = 0.0,
) -> ShuffleNetV1:
    """ShuffleNet v1 1×, g = 3: the Table 3 network (its widths and groups are not options)."""
    return ShuffleNetV1(num_classes, in_chans, se, se_stages, drop_rate)


def _register() -> None:
    # Table 3 reports MFLOPs (= MACs here), millions of parameters and top-1/top-5 error.
    common = {"se_options": NO_INTEGRATION, "family": "mobile"}
    register_pair(
        "mobilenet_v1",
        "se_mobilenet_v1",
        MobileNetV1,
        plain_paper=PaperRef(0.569, 4.2, 28.4, 9.4, "Table 3"),
        se_paper=PaperRef(0.572, 4.7, 25.3, 7.7, "Table 3"),
        description="MobileNet v1, width 1.0",
        se_description="SE-MobileNet v1: SE on each block's output",
        **common,
    )
    register_pair(
        "shufflenet_v1_g3",
        "se_shufflenet_v1_g3",
        shufflenet_v1_g3,
        plain_paper=PaperRef(0.140, 1.8, 32.6, 12.5, "Table 3"),
        se_paper=PaperRef(0.142, 2.4, 31.0, 11.1, "Table 3"),
        description="ShuffleNet v1 1×, g=3",
        se_description="SE-ShuffleNet v1 1×, g=3: SE on each unit's residual branch",
        **common,
    )


_register()
