"""BN-Inception and SE-BN-Inception (Table 2; the SE-Inception module of Fig. 2).

Structure follows the original release's ``SE-BN-Inception.prototxt`` (hujie-frank/SENet): Ioffe
& Szegedy's BN-Inception (Inception-v2) with BN after every convolution and no convolution biases,
Caffe max-pools (3×3/2, no padding, ``ceil_mode=True``), 3×3 average pooling in the pool branches
except ``inception_5b`` (max), and a 7×7 global average pool before one FC layer.

The SE block rescales the whole output of every Inception module — the concatenation of its
branches — as Fig. 2 draws it; all ten modules have one, including the two stride-2 modules (3c,
4e). SE widths are exact ``C // 16`` (256→16, 320→20, 576→36, 608→38, 1056→66, 1024→64), the
release's widths, which our default width rule gives (do not pass ``se_divisor=8``).

Deviation from Cadene's ``bninception`` port (pretrainedmodels): that port converts a
Caffe BN-Inception whose convolutions carry biases; fold them into BN before loading it here.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from senet.layers.se import SEConfig, SqueezeExcitation
from senet.models._common import ClassifierModel, ConvBNAct, check_se_stages, init_weights
from senet.models.registry import NO_INTEGRATION, PaperRef, register_pair


@dataclass(frozen=True)
class InceptionSpec:
    """One BN-Inception module: branch widths (0 = no such branch) and its stride."""

    c1x1: int  # 1×1 branch
    c3x3_reduce: int
    c3x3: int
    cdouble_reduce: int
    cdouble: int  # both 3×3 convolutions of the double-3×3 branch
    pool: Literal["avg", "max"]
    pool_proj: int  # 0: the pool branch passes through unprojected (stride-2 modules)
    stride: int = 1


#: (name, spec) of every module, in order; stage = the digit in the name (3, 4, 5 → se_stages 1, 2, 3)
BN_INCEPTION: tuple[tuple[str, InceptionSpec], ...] = (
    ("inception_3a", InceptionSpec(64, 64, 64, 64, 96, "avg", 32)),
    ("inception_3b", InceptionSpec(64, 64, 96, 64, 96, "avg", 64)),
    ("inception_3c", InceptionSpec(0, 128, 160, 64, 96, "max", 0, stride=2)),
    ("inception_4a", InceptionSpec(224, 64, 96, 96, 128, "avg", 128)),
    ("inception_4b", InceptionSpec(192, 96, 128, 96, 128, "avg", 128)),
    ("inception_4c", InceptionSpec(160, 128, 160, 128, 160, "avg", 128)),
    ("inception_4d", InceptionSpec(96, 128, 192, 160, 192, "avg", 128)),
    ("inception_4e", InceptionSpec(0, 128, 192, 192, 256, "max", 0, stride=2)),
    ("inception_5a", InceptionSpec(352, 192, 320, 160, 224, "avg", 128)),
    ("inception_5b", InceptionSpec(352, 192, 320, 192, 224, "max", 128)),
)


class InceptionModule(nn.Module):
    """Parallel 1×1, 3×3, double-3×3 and pool branches, concatenated, then SE (Fig. 2)."""

    def __init__(self, cin: int, spec: InceptionSpec, se: SEConfig | None = None) -> None:
        super().__init__()
        s = spec.stride
        branches: list[nn.Module] = []
        if spec.c1x1:
            branches.append(ConvBNAct(cin, spec.c1x1))
        branches.append(
            nn.Sequential(
                ConvBNAct(cin, spec.c3x3_reduce), ConvBNAct(spec.c3x3_reduce, spec.c3x3, 3, s, 1)
            )
        )
        branches.append(
            nn.Sequential(
                ConvBNAct(cin, spec.cdouble_reduce),
                ConvBNAct(spec.cdouble_reduce, spec.cdouble, 3, 1, 1),
                ConvBNAct(spec.cdouble, spec.cdouble, 3, s, 1),
            )
        )
        if s == 1:
            pool = (
                nn.AvgPool2d(3, 1, 1)
                if spec.pool == "avg"
                else nn.MaxPool2d(3, 1, 1, ceil_mode=True)
            )
        else:
            pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        proj = [ConvBNAct(cin, spec.pool_proj)] if spec.pool_proj else []
        branches.append(nn.Sequential(pool, *proj))
        self.branches = nn.ModuleList(branches)
        self.out_channels = spec.c1x1 + spec.c3x3 + spec.cdouble + (spec.pool_proj or cin)
        self.se = SqueezeExcitation.from_config(self.out_channels, se) if se is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([branch(x) for branch in self.branches], 1)
        return out if self.se is None else self.se(out)


class BNInception(ClassifierModel):
    """BN-Inception (Ioffe & Szegedy 2015) as the SE release builds it, with optional SE modules."""

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
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=ConvBNAct(in_chans, 64, 7, 2, 3),
                pool1=nn.MaxPool2d(3, 2, ceil_mode=True),
                conv2_reduce=ConvBNAct(64, 64),
                conv2=ConvBNAct(64, 192, 3, 1, 1),
                pool2=nn.MaxPool2d(3, 2, ceil_mode=True),
            )
        )
        self.feature_info = [{"module": "stem.conv2", "num_chs": 192, "reduction": 4}]
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        cin, reduction = 192, 8
        for name, spec in BN_INCEPTION:
            stage = int(name[len("inception_")]) - 2
            module = InceptionModule(cin, spec, se if stage in se_stages else None)
            modules[name] = module
            cin, reduction = module.out_channels, reduction * spec.stride
            if name in ("inception_3b", "inception_4d", "inception_5b"):
                self.feature_info.append(
                    {"module": f"blocks.{name}", "num_chs": cin, "reduction": reduction}
                )
        self.blocks = nn.Sequential(modules)
        self._make_head(cin, num_classes, drop_rate)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``inception_5b``'s output (N × 1024 × 7 × 7 at 224)."""
        return self.blocks(self.stem(x))


def _register() -> None:
    register_pair(
        "bn_inception",
        "se_bn_inception",
        BNInception,
        plain_paper=PaperRef(2.03, None, 25.38, 7.89, "Table 2"),
        se_paper=PaperRef(2.04, None, 24.23, 7.14, "Table 2"),
        description="BN-Inception (Inception-v2), SE release layout",
        se_description="SE-BN-Inception: SE on each Inception module (Fig. 2)",
        se_options=NO_INTEGRATION,
        family="inception",
    )


_register()
