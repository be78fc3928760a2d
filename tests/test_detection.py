"""The documented recipe: torchvision Faster R-CNN with an SE-ResNet-FPN backbone trains a step and infers (issue 5)."""

from __future__ import annotations

import pytest
import torch

from senet.interop.detection import (
    DETECTION_PRESETS,
    build_detector,
    detection_preset,
    faster_rcnn,
    freeze_batchnorm,
    se_resnet_fpn_backbone,
)

torchvision = pytest.importorskip("torchvision")


def synthetic_batch(size: int = 128) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, size, size, generator=g), torch.rand(3, size - 16, size, generator=g)]
    targets = [
        {
            "boxes": torch.tensor([[10.0, 12.0, 70.0, 90.0], [50.0, 40.0, 120.0, 100.0]]),
            "labels": torch.tensor([1, 2]),
        },
        {"boxes": torch.tensor([[5.0, 5.0, 60.0, 50.0]]), "labels": torch.tensor([3])},
    ]
    return images, targets


def train_and_infer(name: str) -> None:
    torch.manual_seed(0)
    small = {  # fewer proposals and RoIs than COCO's defaults: a unit test, not a benchmark
        "rpn_pre_nms_top_n_train": 200,
        "rpn_post_nms_top_n_train": 100,
        "rpn_pre_nms_top_n_test": 100,
        "rpn_post_nms_top_n_test": 50,
        "box_batch_size_per_image": 64,
    }
    model = faster_rcnn(name, num_classes=4, min_size=128, max_size=128, **small)
    params = [p for p in model.parameters() if p.requires_grad]
    frozen = model.backbone.body.model.conv1.weight
    assert not frozen.requires_grad  # the stem is frozen (trainable_stages=3)
    before = {
        "frozen": frozen.clone(),
        "layer4": model.backbone.body.model.layer4[0].conv1.weight.clone(),
    }
    images, targets = synthetic_batch()
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    opt.zero_grad()
    loss.backward()
    se_grad = model.backbone.body.model.layer4[0].se.fc1.weight.grad
    assert se_grad is not None and se_grad.abs().sum() > 0  # gradients reach the SE blocks
    opt.step()
    assert torch.equal(frozen, before["frozen"])
    assert not torch.equal(model.backbone.body.model.layer4[0].conv1.weight, before["layer4"])
    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 2
    for det, img in zip(detections, images):
        assert set(det) == {"boxes", "labels", "scores"}
        boxes = det["boxes"]
        assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(det["scores"]) == len(boxes)
        if len(boxes):
            assert (boxes[:, 2] <= img.shape[2] + 1e-3).all() and (
                boxes[:, 3] <= img.shape[1] + 1e-3
            ).all()


@pytest.mark.slow
def test_faster_rcnn_se_resnet18_fpn() -> None:
    train_and_infer("se_resnet18")


@pytest.mark.slow
def test_faster_rcnn_se_resnet50_fpn() -> None:
    """The paper's COCO setting: SE-ResNet-50 in Faster R-CNN (here with torchvision's FPN)."""
    train_and_infer("se_resnet50")


def test_backbone_levels_and_frozen_bn() -> None:
    backbone = se_resnet_fpn_backbone("se_resnet18", out_channels=64)
    feats = backbone(torch.randn(1, 3, 64, 64))
    assert list(feats) == ["0", "1", "2", "3", "pool"]
    assert [tuple(f.shape) for f in feats.values()] == [
        (1, 64, 16, 16),
        (1, 64, 8, 8),
        (1, 64, 4, 4),
        (1, 64, 2, 2),
        (1, 64, 1, 1),
    ]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.body.modules())


def test_freeze_batchnorm_keeps_the_function() -> None:
    torch.manual_seed(0)
    bn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    with torch.no_grad():
        bn[1].running_mean.uniform_(-1, 1)
        bn[1].running_var.uniform_(0.5, 2)
    bn.eval()
    x = torch.randn(2, 3, 5, 5)
    ref = bn(x)
    frozen = freeze_batchnorm(bn)
    assert isinstance(frozen[1], torchvision.ops.FrozenBatchNorm2d)
    assert torch.allclose(frozen(x), ref, atol=1e-5)


def test_bad_trainable_stages() -> None:
    with pytest.raises(ValueError, match=r"trainable_stages=7 must be in 0\.\.4"):
        se_resnet_fpn_backbone("se_resnet18", trainable_stages=7)


# --------------------------------------------------------------------------------------------
# The paper's COCO protocol (Table 7) as presets
# --------------------------------------------------------------------------------------------
SMALL = {  # the preset's proposals and RoIs, scaled down for 128-pixel generated images
    "min_size": 128,
    "max_size": 128,
    "rpn_pre_nms_top_n_train": 200,
    "rpn_post_nms_top_n_train": 100,
    "rpn_pre_nms_top_n_test": 100,
    "rpn_post_nms_top_n_test": 50,
    "box_batch_size_per_image": 64,
}


def test_presets_state_the_papers_protocol_and_mark_the_rest_assumed() -> None:
    cfg = detection_preset("coco_faster_rcnn_se_resnet50")
    assert (cfg.backbone, cfg.paper_ap, cfg.paper_ap50) == ("se_resnet50", 40.4, 61.0)
    assert cfg.train_sets == ("coco_2014_train", "coco_2014_valminusminival")  # trainval35k
    assert cfg.test_set == "coco_2014_minival" and cfg.pretrained == "imagenet"
    stated = {"name", "backbone", "paper_ap", "paper_ap50", "detector", "num_classes"}
    stated |= {"train_sets", "test_set", "pretrained"}
    assert "fpn" in cfg.assumed_fields() and not stated & set(cfg.assumed_fields())
    backbones = {c.backbone for c in DETECTION_PRESETS.values()}
    assert backbones == {"resnet50", "se_resnet50", "resnet101", "se_resnet101"}
    # warm-up from 1/3 over 500 iterations, then ÷10 at 120k and 160k of 180k ("2x")
    lr = [cfg.lr_factor(i) for i in (0, 250, 500, 119_999, 120_000, 160_000, 179_999)]
    assert lr == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0, 0.1, 0.01, 0.01])
    with pytest.raises(ValueError, match="did you mean coco_faster_rcnn_se_resnet50"):
        detection_preset("coco_faster_rcnn_se_resnet5")
    with pytest.raises(ValueError, match=r"no field\(s\) \['min_sizes'\]"):
        detection_preset("coco_faster_rcnn_resnet50", min_sizes=600)


def _smoke(cfg, steps: int = 1) -> None:
    """One training step with the preset's optimizer and schedule, then one inference."""
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="ImageNet weights"):
        model = build_detector(cfg, **SMALL)
    opt, schedule = cfg.optimizer(model)
    assert opt.param_groups[0]["lr"] == pytest.approx(cfg.base_lr * cfg.warmup_factor)
    images, targets = synthetic_batch()
    model.train()
    losses = model(images, targets)
    loss = sum(losses.values())
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    schedule.step()
    assert opt.param_groups[0]["lr"] > cfg.base_lr * cfg.warmup_factor  # warming up
    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == len(images)
    for det, img in zip(detections, images):
        boxes = det["boxes"]
        assert boxes.shape[1:] == (4,) and len(det["scores"]) == len(det["labels"]) == len(boxes)
        assert ((det["labels"] >= 1) & (det["labels"] < cfg.num_classes)).all()
        assert (boxes[:, 2:] >= boxes[:, :2]).all()
        assert (boxes[:, 2] <= img.shape[2] + 1e-3).all() and (
            boxes[:, 3] <= img.shape[1] + 1e-3
        ).all()


@pytest.mark.slow
def test_detection_preset_smoke_small_backbone() -> None:
    """The preset's detector with an SE-ResNet-18 trunk (fast): builds, trains a step, infers."""
    _smoke(detection_preset("coco_faster_rcnn_se_resnet50", backbone="se_resnet18", num_classes=4))


@pytest.mark.slow
def test_detection_preset_smoke_se_resnet50() -> None:
    """The Table 7 preset itself (SE-ResNet-50-FPN, 91 classes) on generated images."""
    _smoke(detection_preset("coco_faster_rcnn_se_resnet50"))
