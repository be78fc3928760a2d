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

``DETECTION_PRESETS`` / ``detection_preset(name)`` describe the paper's COCO protocol (Table 7) as
``DetectionConfig``s, marking what the paper leaves unsaid; ``build_detector(config)`` builds one.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.factory import create_model
from senet.models.features import FeatureExtractor
from senet.utils.names import did_you_mean


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


# --------------------------------------------------------------------------------------------
# The paper's COCO protocol (Table 7) as named presets
# --------------------------------------------------------------------------------------------
def _assumed(default: Any) -> Any:
    """A ``DetectionConfig`` field the paper does not state."""
    return dataclasses.field(default=default, metadata={"assumed": True})


@dataclass(frozen=True)
class DetectionConfig:
    """A COCO detection setting: detector, backbone, data split and training schedule (Table 7).

    The paper states: Faster R-CNN; ResNet-50/101 replaced by SE-ResNet-50/101, initialised from
    ImageNet weights; COCO's minival protocol (train on the 80k train + 35k val images,
    "trainval35k", evaluate on the remaining 5k, "minival"); Detectron's hyper-parameters with
    the "2x" schedule. The rest is assumed (``assumed_fields()``): the FPN (the paper does not say
    C4 or FPN) and the values, Detectron's ``e2e_faster_rcnn_R-50-FPN_2x`` configuration.
    Iterations count global batches of ``images_per_batch`` images.
    """

    name: str
    backbone: str
    paper_ap: float | None = None  # COCO minival AP (Table 7)
    paper_ap50: float | None = None
    detector: str = "faster_rcnn"
    fpn: bool = _assumed(True)
    num_classes: int = 91  # torchvision's COCO numbering (category ids 1..90 + background)
    train_sets: tuple[str, ...] = ("coco_2014_train", "coco_2014_valminusminival")
    test_set: str = "coco_2014_minival"
    pretrained: str = "imagenet"
    trainable_stages: int = _assumed(3)  # Detectron's FREEZE_AT=2: stem and stage 1 frozen
    frozen_bn: bool = _assumed(True)  # Detectron's AffineChannel: BN statistics and affine fixed
    min_size: int = _assumed(800)
    max_size: int = _assumed(1333)
    horizontal_flip: bool = _assumed(True)
    images_per_batch: int = _assumed(16)  # 8 GPUs × 2 images
    base_lr: float = _assumed(0.02)
    momentum: float = _assumed(0.9)
    weight_decay: float = _assumed(1e-4)
    max_iter: int = _assumed(180_000)  # "2x": twice Detectron's 90k-iteration schedule
    lr_steps: tuple[int, ...] = _assumed((120_000, 160_000))
    gamma: float = _assumed(0.1)
    warmup_iters: int = _assumed(500)
    warmup_factor: float = _assumed(1 / 3)
    rpn_pre_nms_top_n_train: int = _assumed(2000)
    rpn_post_nms_top_n_train: int = _assumed(2000)
    rpn_pre_nms_top_n_test: int = _assumed(1000)
    rpn_post_nms_top_n_test: int = _assumed(1000)
    box_batch_size_per_image: int = _assumed(512)

    @classmethod
    def assumed_fields(cls) -> tuple[str, ...]:
        """The fields the paper does not state (Detectron's values, or our reading)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("assumed"))

    def detector_kwargs(self) -> dict[str, Any]:
        """The ``FasterRCNN`` options of this setting (image sizes, proposals, RoI batch)."""
        sizes = {"min_size": self.min_size, "max_size": self.max_size}
        rpn_roi = {
            f: getattr(self, f) for f in self.assumed_fields() if f.startswith(("rpn", "box"))
        }
        return {**sizes, **rpn_roi}

    def lr_factor(self, iteration: int) -> float:
        """The learning rate at ``iteration`` as a fraction of ``base_lr`` (warm-up, then steps)."""
        factor = self.gamma ** sum(iteration >= s for s in self.lr_steps)
        if iteration < self.warmup_iters:
            alpha = iteration / self.warmup_iters
            factor *= self.warmup_factor * (1 - alpha) + alpha
        return factor

    def optimizer(self, model: nn.Module) -> tuple[torch.optim.Optimizer, Any]:
        """SGD over the trainable parameters and its per-iteration ``LambdaLR`` schedule."""
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(
            params, lr=self.base_lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, self.lr_factor)


#: Table 7: COCO minival AP / AP@0.5 of Faster R-CNN with each backbone
DETECTION_PRESETS: dict[str, DetectionConfig] = {
    c.name: c
    for c in (
        DetectionConfig("coco_faster_rcnn_resnet50", "resnet50", 38.0, 57.9),
        DetectionConfig("coco_faster_rcnn_se_resnet50", "se_resnet50", 40.4, 61.0),
        DetectionConfig("coco_faster_rcnn_resnet101", "resnet101", 39.9, 60.1),
        DetectionConfig("coco_faster_rcnn_se_resnet101", "se_resnet101", 41.9, 62.7),
    )
}


def detection_preset(name: str, **changes: Any) -> DetectionConfig:
    """A preset of ``DETECTION_PRESETS``, with ``changes`` to any field; unknown names suggest
    close matches."""
    if name not in DETECTION_PRESETS:
        hint = did_you_mean(name, list(DETECTION_PRESETS))
        raise ValueError(
            f"unknown detection preset {name!r}; {hint}presets: {', '.join(DETECTION_PRESETS)}"
        )
    fields = {f.name for f in dataclasses.fields(DetectionConfig)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise ValueError(f"DetectionConfig has no field(s) {unknown}; fields: {sorted(fields)}")
    return dataclasses.replace(DETECTION_PRESETS[name], **changes)


def build_detector(
    config: DetectionConfig | str,
    checkpoint: str | Path | None = None,
    **detector_kwargs: Any,
) -> nn.Module:
    """The detector of ``config`` (a ``DetectionConfig`` or a preset name); ``checkpoint``: the
    backbone's ImageNet weights (our format); ``detector_kwargs`` override the config's."""
    cfg = detection_preset(config) if isinstance(config, str) else config
    if cfg.detector != "faster_rcnn" or not cfg.fpn:
        raise ValueError(
            f"{cfg.name}: only Faster R-CNN with an FPN backbone is built here "
            f"(detector={cfg.detector!r}, fpn={cfg.fpn})"
        )
    if cfg.pretrained == "imagenet" and checkpoint is None:
        warnings.warn(
            f"{cfg.name}: the paper initialises the backbone from ImageNet weights; pass "
            "checkpoint= (training from scratch is not the paper's protocol)",
            stacklevel=2,
        )
    return faster_rcnn(
        cfg.backbone,
        num_classes=cfg.num_classes,
        checkpoint=checkpoint,
        trainable_stages=cfg.trainable_stages,
        backbone_options={"frozen_bn": cfg.frozen_bn},
        **{**cfg.detector_kwargs(), **detector_kwargs},
    )
