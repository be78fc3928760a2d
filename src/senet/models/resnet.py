"""ResNet, ResNeXt, SENet-154 and the CIFAR ResNets: one network class, one spec table (Sec. 3.3, 5).

An SE network is the same network with an ``SEConfig``: ``se_resnet50`` is ``resnet50`` plus SE
blocks, not a second class tree. ``SPECS`` below is the whole family.

Layouts (``layout=``):

- ``"caffe"`` (default): the paper's and the original release's — stride in the first 1×1 of the
  ResNet bottleneck, stem max-pool 3×3/2 with no padding and ``ceil_mode=True``. This is the layout
  whose complexity the paper reports (ResNet-50 3.86 GMACs; torchvision's layout is 4.09 G).
- ``"torchvision"``: stride in the 3×3 convolution and a padded stem max-pool, as torchvision and
  timm build ResNets; use it to load their weights.

ResNeXt and SENet-154 put the stride in the 3×3 convolution in both layouts, as their released
models do. ``stride_in=`` overrides the stride placement alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import nn

from senet.layers.se import SEConfig
from senet.models._common import ClassifierModel, check_se_stages, init_weights
from senet.models.blocks import (
    BLOCKS,
    Bottleneck,
    StrideIn,
    ZeroPadShortcut,
    conv1x1,
    conv3x3,
)
from senet.models.registry import CIFAR10_ENTRY, PaperRef, register_pair

Layout = Literal["caffe", "torchvision"]
Stem = Literal["7x7", "deep", "cifar", "cifar_preact"]


@dataclass(frozen=True)
class ResNetSpec:
    """Everything that distinguishes one residual network of the paper from another."""

    block: Literal["basic", "bottleneck", "preact_basic", "preact_bottleneck"]
    depths: tuple[int, ...]
    widths: tuple[int, ...] = (64, 128, 256, 512)  # "planes" of each stage
    groups: int = 1  # ResNeXt cardinality
    base_width: int = 64  # ResNeXt width per group (the "4d" of 32×4d)
    first_width_ratio: float = 1.0  # SENet-154 halves the first 1×1's width
    stem: Stem = "7x7"
    stem_width: int = 64
    downsample_kernel: int = 1  # SENet-154: 3×3 stride-2 projection (stages 2+)
    shortcut: Literal["B", "A"] = "B"  # A: CIFAR ResNet's parameter-free zero-pad shortcut
    stride_in_1x1: bool = False  # Caffe layout puts the stride in the first 1×1 (ResNet only)
    dropout: float = 0.0

    @property
    def num_stages(self) -> int:
        return len(self.depths)


class ResNet(ClassifierModel):
    """A residual network built from a ``ResNetSpec``, with SE blocks when ``se`` is given."""

    def __init__(
        self,
        spec: ResNetSpec,
        num_classes: int = 1000,
        in_chans: int = 3,
        se: SEConfig | None = None,
        se_stages: int | tuple[int, ...] | None = None,
        layout: Layout = "caffe",
        stride_in: StrideIn | None = None,
        drop_rate: float | None = None,
    ) -> None:
        super().__init__()
        if layout not in ("caffe", "torchvision"):
            raise ValueError(f"layout={layout!r} is not supported; choose caffe or torchvision")
        if stride_in not in (None, "1x1", "3x3"):
            raise ValueError(f"stride_in={stride_in!r} is not supported; choose 1x1 or 3x3")
        se_stages = check_se_stages(se_stages, spec.num_stages)
        if stride_in is None:
            stride_in = "1x1" if (spec.stride_in_1x1 and layout == "caffe") else "3x3"
        self.spec, self.layout = spec, layout
        self.drop_rate = spec.dropout if drop_rate is None else drop_rate
        self._build_stem(spec, in_chans, layout)

        block = BLOCKS[spec.block]
        block_options: dict[str, object] = {"groups": spec.groups, "base_width": spec.base_width}
        if block is Bottleneck:
            block_options.update(first_width_ratio=spec.first_width_ratio, stride_in=stride_in)
        elif spec.first_width_ratio != 1.0:
            raise ValueError(f"first_width_ratio applies to the bottleneck block, not {spec.block}")
        cin = spec.stem_width
        self.feature_info: list[dict[str, object]] = []
        reduction = 4 if spec.stem in ("7x7", "deep") else 1
        for i, (depth, planes) in enumerate(zip(spec.depths, spec.widths), start=1):
            stride = 1 if i == 1 else 2
            stage_se = se if i in se_stages else None
            cout = planes * block.expansion
            layers = []
            for j in range(depth):
                s = stride if j == 0 else 1
                downsample = self._downsample(spec, cin, cout, s, first_stage=i == 1)
                layers.append(block(cin, planes, s, downsample, stage_se, **block_options))
                cin = cout
            self.add_module(f"layer{i}", nn.Sequential(*layers))
            reduction *= stride
            self.feature_info.append(
                {"module": f"layer{i}", "num_chs": cout, "reduction": reduction}
            )
        self.bn_final = nn.BatchNorm2d(cin) if spec.block.startswith("preact") else None
        self._make_head(cin, num_classes, self.drop_rate)
        init_weights(self, linear_std=None)  # He init (Sec. 5.1); FC keeps the default

    def _build_stem(self, spec: ResNetSpec, in_chans: int, layout: Layout) -> None:
        w = spec.stem_width
        pool = nn.MaxPool2d(3, 2, 0, ceil_mode=True) if layout == "caffe" else nn.MaxPool2d(3, 2, 1)
        if spec.stem == "7x7":
            self.conv1 = nn.Conv2d(in_chans, w, 7, 2, 3, bias=False)
            self.bn1, self.maxpool = nn.BatchNorm2d(w), pool
        elif spec.stem == "deep":  # SENet-154: three 3×3 convolutions, 64-64-128
            self.conv1 = nn.Sequential(
                conv3x3(in_chans, w // 2, 2),
                nn.BatchNorm2d(w // 2),
                nn.ReLU(inplace=True),
                conv3x3(w // 2, w // 2),
                nn.BatchNorm2d(w // 2),
                nn.ReLU(inplace=True),
                conv3x3(w // 2, w),
            )
            self.bn1, self.maxpool = nn.BatchNorm2d(w), pool
        elif spec.stem == "cifar":
            self.conv1, self.bn1, self.maxpool = conv3x3(in_chans, w), nn.BatchNorm2d(w), None
        else:  # cifar_preact: the first block pre-activates
            self.conv1, self.bn1, self.maxpool = conv3x3(in_chans, w), None, None

    @staticmethod
    def _downsample(
        spec: ResNetSpec, cin: int, cout: int, stride: int, first_stage: bool
    ) -> nn.Module | None:
        if stride == 1 and cin == cout:
            return None
        if spec.shortcut == "A":
            return ZeroPadShortcut(cin, cout, stride)
        if spec.block.startswith("preact"):
            return conv1x1(cin, cout, stride)
        k = 1 if first_stage else spec.downsample_kernel
        conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(cout))

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i}") for i in range(1, self.spec.num_stages + 1)]

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = torch.relu(self.bn1(x))
        return x if self.maxpool is None else self.maxpool(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The final feature map (N × num_features × H/32 × W/32 on ImageNet)."""
        x = self.forward_stem(x)
        for stage in self.stages:
            x = stage(x)
        if self.bn_final is not None:
            x = torch.relu(self.bn_final(x))
        return x


# --------------------------------------------------------------------------------------------
# The spec table: every residual network of the paper.
# --------------------------------------------------------------------------------------------
_CIFAR = {"widths": (16, 32, 64), "stem": "cifar", "stem_width": 16}
_PREACT = {"widths": (16, 32, 64), "stem": "cifar_preact", "stem_width": 16}

SPECS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec("basic", (2, 2, 2, 2)),
    "resnet34": ResNetSpec("basic", (3, 4, 6, 3)),
    "resnet50": ResNetSpec("bottleneck", (3, 4, 6, 3), stride_in_1x1=True),
    "resnet101": ResNetSpec("bottleneck", (3, 4, 23, 3), stride_in_1x1=True),
    "resnet152": ResNetSpec("bottleneck", (3, 8, 36, 3), stride_in_1x1=True),
    "resnext50_32x4d": ResNetSpec("bottleneck", (3, 4, 6, 3), groups=32, base_width=4),
    "resnext101_32x4d": ResNetSpec("bottleneck", (3, 4, 23, 3), groups=32, base_width=4),
    # SENet-154 (appendix): 64×4d ResNeXt-152 layout with the first 1×1 halved, a deep stem,
    # 3×3 stride-2 projections and dropout 0.2 before the classifier.
    "senet154": ResNetSpec(
        "bottleneck",
        (3, 8, 36, 3),
        groups=64,
        base_width=4,
        first_width_ratio=0.5,
        stem="deep",
        stem_width=128,
        downsample_kernel=3,
        dropout=0.2,
    ),
    **{
        f"cifar_resnet{6 * n + 2}": ResNetSpec("basic", (n, n, n), shortcut="A", **_CIFAR)
        for n in (3, 5, 7, 9, 18)
    },
    "cifar_resnet164": ResNetSpec("preact_bottleneck", (18, 18, 18), **_PREACT),
    "cifar_wrn16_8": ResNetSpec(
        "preact_basic", (2, 2, 2), **{**_PREACT, "widths": (128, 256, 512)}
    ),
}

# The paper's reference numbers: Table 2 (ImageNet, 224, "re-implementation" and SE columns;
# GMACs = its GFLOPs column), Table 10 (ResNet-50 params) and Tables 4–5 (CIFAR-10/100 error).
_PAPER: dict[str, tuple[PaperRef, PaperRef]] = {
    "resnet50": (
        PaperRef(3.86, 25.6, 24.80, 7.48, "Table 2"),
        PaperRef(3.87, 28.1, 23.29, 6.62, "Table 2"),
    ),
    "resnet101": (
        PaperRef(7.58, None, 23.17, 6.52, "Table 2"),
        PaperRef(7.60, None, 22.38, 6.07, "Table 2"),
    ),
    "resnet152": (
        PaperRef(11.30, None, 22.42, 6.34, "Table 2"),
        PaperRef(11.32, None, 21.57, 5.73, "Table 2"),
    ),
    "resnext50_32x4d": (
        PaperRef(4.24, None, 22.11, 5.90, "Table 2"),
        PaperRef(4.25, None, 21.10, 5.49, "Table 2"),
    ),
    "resnext101_32x4d": (
        PaperRef(7.99, None, 21.18, 5.57, "Table 2"),
        PaperRef(8.00, None, 20.70, 5.01, "Table 2"),
    ),
    "senet154": (
        PaperRef(source="appendix"),
        PaperRef(None, None, 18.68, 4.47, "Table 8 / release"),
    ),
    "cifar_resnet110": (
        PaperRef(top1_err=6.37, source="Tables 4–5", cifar100_top1_err=26.88),
        PaperRef(top1_err=5.21, source="Tables 4–5", cifar100_top1_err=23.85),
    ),
    "cifar_resnet164": (
        PaperRef(top1_err=5.46, source="Tables 4–5", cifar100_top1_err=24.33),
        PaperRef(top1_err=4.39, source="Tables 4–5", cifar100_top1_err=21.31),
    ),
    "cifar_wrn16_8": (
        PaperRef(top1_err=4.27, source="Tables 4–5", cifar100_top1_err=20.43),
        PaperRef(top1_err=3.88, source="Tables 4–5", cifar100_top1_err=19.14),
    ),
}


#: SENet-154 is also evaluated on 320×320 crops (Table 8: 17.28 / 3.79). The paper gives the crop,
#: not the resize; 366 keeps the 224/256 crop ratio (an assumption).
SENET154_SIZES = {"test_input_size": 320, "test_resize": 366}


def _se_name(name: str) -> str:
    if name == "senet154":
        return "senet154"
    if name.startswith("cifar_"):
        return "cifar_se_" + name[len("cifar_") :]
    return "se_" + name


def _plain_name(name: str) -> str:
    return "senet154_plain" if name == "senet154" else name


def _register_family() -> None:
    for name, spec in SPECS.items():
        cifar = name.startswith("cifar_")
        plain_ref, se_ref = _PAPER.get(name, (PaperRef(), PaperRef()))
        family = "cifar_resnet" if cifar else ("resnext" if spec.groups > 1 else "resnet")
        sizes = CIFAR10_ENTRY if cifar else (SENET154_SIZES if name == "senet154" else {})
        register_pair(
            _plain_name(name),
            _se_name(name),
            partial(ResNet, spec),
            plain_paper=plain_ref,
            se_paper=se_ref,
            family=family,
            **sizes,
        )


_register_family()
