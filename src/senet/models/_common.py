"""Pieces shared by the non-residual families of the paper (VGG, Inception, mobile networks).

``ConvBNAct`` is the conv → BN → ReLU unit every one of them is made of (keys ``conv``/``bn``, the
layout timm's ``ConvNormAct`` uses, so its weights map by name). ``ClassifierModel`` is the uniform
model interface of docs/ARCHITECTURE.md for networks whose head is global pooling + one FC layer.
``check_se_stages`` validates a network's ``se_stages`` option once, at construction.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBNAct(nn.Module):
    """Convolution (no bias) → BatchNorm → optional ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int | tuple[int, int] = 1,
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
        groups: int = 1,
        eps: float = 1e-5,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=eps)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def check_se_stages(se_stages: object, num_stages: int) -> tuple[int, ...]:
    """``se_stages`` (a stage, a list/tuple of stages, or None: every stage) as a tuple, or a clear
    error naming the valid stages."""
    stages = tuple(range(1, num_stages + 1))
    if se_stages is None:
        return stages
    chosen = (se_stages,) if isinstance(se_stages, int) else se_stages
    if isinstance(chosen, str) or not isinstance(chosen, tuple | list):
        raise ValueError(
            f"se_stages={se_stages!r} must be a stage number or a list of them "
            f"(e.g. se_stages=1,2 on the command line); this network has stages {stages}"
        )
    chosen = tuple(chosen)
    bad = [s for s in chosen if isinstance(s, bool) or s not in stages]
    if bad:
        numbers = all(isinstance(s, int) for s in bad)
        hint = "" if numbers else " (give stage numbers: se_stages=1,2 on the command line)"
        raise ValueError(
            f"se_stages={chosen} names stage(s) {bad}; this network has stages {stages}{hint}"
        )
    return chosen


def init_weights(model: nn.Module, linear_std: float | None = 0.01) -> None:
    """He (MSRA) initialisation of convolutions, unit BN, N(0, linear_std) FC (Sec. 5.1).

    ``linear_std=None`` leaves FC layers at PyTorch's default initialisation.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)


class ClassifierModel(nn.Module):
    """Global average pooling → dropout → FC head and the uniform interface around it.

    Subclasses build their body, call ``_make_head(num_features, num_classes, drop_rate)`` and
    define ``forward_features``.
    """

    num_features: int
    num_classes: int
    feature_info: list[dict[str, object]]

    def _make_head(self, num_features: int, num_classes: int, drop_rate: float = 0.0) -> None:
        self.num_features, self.num_classes = num_features, num_classes
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.global_pool(x).flatten(1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one (0 removes it)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
