"""SE-ResNet-FPN backbones for torchvision's detectors (the paper's COCO experiment, "Other tasks").

The paper replaces ResNet-50/101 by SE-ResNet-50/101 in Faster R-CNN (COCO minival AP 38.0 → 40.4
for ResNet-50). This module builds the same kind of detector from torchvision's parts:

    backbone = se_resnet_fpn_backbone("se_resnet50", checkpoint="se_resnet50.safetensors")
    detector = faster_rcnn("se_resnet50", num_classes=91, checkpoint=...)

torchvision's own ``resnet_fpn_backbone`` cannot take a senet model: its ``IntermediateLayerGetter``
calls a model's children in order, and senet applies the stem's ReLU functionally. Here the stages
come from ``FeatureExtractor`` and feed ``torchvision.ops.FeaturePyramidNetwork`` directly. As in
torchvision's detection backbones, BatchNorm is frozen (statistics and affine) and the stem plus the
first stages can be frozen (``trainable_stages``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.models.features import FeatureExtractor


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` by torchvision's ``FrozenBatchNorm2d`` (in place)."""
    from torchvision.ops import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


def freeze_stages(model: nn.Module, trainable_stages: int) -> None:
    """Stop gradients into the stem and all but the last ``trainable_stages`` stages."""
    stages = [str(f["module"]) for f in model.feature_info]
    if not 0 <= trainable_stages <= len(stages):
        raise ValueError(f"trainable_stages={trainable_stages} must be in 0..{len(stages)}")
    keep = set(stages[len(stages) - trainable_stages :])
    for name, param in model.named_parameters():
        if name.split(".")[0] not in keep:
            param.requires_grad_(False)


class FPNBackbone(nn.Module):
    """Stage features → FPN; ``forward`` returns the ordered dict torchvision's detectors expect."""

    def __init__(
        self, body: FeatureExtractor, out_channels: int = 256, extra_max_pool: bool = True
    ) -> None:
        super().__init__()
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

        self.body = body
        self.fpn = FeaturePyramidNetwork(
            body.channels, out_channels, extra_blocks=LastLevelMaxPool() if extra_max_pool else None
        )
        self.out_channels = out_channels
        self.level_names = [str(i) for i in range(len(body.channels))]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = OrderedDict(zip(self.level_names, self.body(x)))
        return self.fpn(feats)


def se_resnet_fpn_backbone(
    name: str = "se_resnet50",
    checkpoint: str | Path | None = None,
    out_indices: Sequence[int] = (0, 1, 2, 3),
    trainable_stages: int = 3,
    frozen_bn: bool = True,
    out_channels: int = 256,
    **options: Any,
) -> FPNBackbone:
    """A senet model's stages (``out_indices``) with an FPN on top, ready for torchvision detectors."""
    from senet.factory import create_model

    model = create_model(name, checkpoint=checkpoint, **options)
    freeze_stages(model, trainable_stages)
    if frozen_bn:
        freeze_batchnorm(model)
    return FPNBackbone(FeatureExtractor(model, out_indices), out_channels)


def faster_rcnn(
    name: str = "se_resnet50",
    num_classes: int = 91,
    checkpoint: str | Path | None = None,
    trainable_stages: int = 3,
    backbone_options: dict[str, Any] | None = None,
    **detector_kwargs: Any,
) -> nn.Module:
    """torchvision ``FasterRCNN`` with a ``name``-FPN backbone (91 classes = COCO with background).

    Anchors (one size per FPN level, 32…512, three aspect ratios) and the RoI pooler follow
    torchvision's ``fasterrcnn_resnet50_fpn``; ``detector_kwargs`` go to ``FasterRCNN`` (e.g.
    ``min_size``/``max_size``, ``image_mean``/``image_std``).
    """
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    backbone = se_resnet_fpn_backbone(
        name, checkpoint, trainable_stages=trainable_stages, **(backbone_options or {})
    )
    levels = len(backbone.level_names) + 1  # + the max-pooled extra level
    sizes = tuple((32 * 2**i,) for i in range(levels))
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * levels)
    pooler = MultiScaleRoIAlign(backbone.level_names, output_size=7, sampling_ratio=2)
    meta = getattr(backbone.body.model, "checkpoint_metadata", None) or {}
    if "mean" in meta and "image_mean" not in detector_kwargs:
        detector_kwargs["image_mean"], detector_kwargs["image_std"] = meta["mean"], meta["std"]
    return FasterRCNN(
        backbone,
        num_classes=num_classes,
        rpn_anchor_generator=anchors,
        box_roi_pool=pooler,
        **detector_kwargs,
    )
