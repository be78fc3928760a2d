"""The publicly released ImageNet weights of senet's networks, as their projects publish them.

Sources of every URL, hash and accuracy (nothing here was invented or measured by senet):

- ``original``: the authors' Caffe release as converted to PyTorch by Cadene
  (``pretrainedmodels/models/senet.py``: URLs, RGB [0, 1] input, ImageNet mean/std; top-1 from its
  README, evaluated at 224 crop of a 256 resize, bilinear). timm re-hosts the same tensors on
  GitHub: identical files for SE-ResNet-50/101/152 (same name and hash), re-saved and re-hashed
  copies for SE-ResNeXt-50/101 and SENet-154 (timm commit e11efa87, "pickle scan / verify and
  re-hash"); both are listed, the GitHub copy first.
- ``timm``: timm's ``default_cfgs`` (``timm/models/resnet.py``, ``inception_resnet_v2.py``) for
  the URLs and eval transforms; top-1 from timm's ``results/results-imagenet.csv`` at that
  transform (the row at 224 px where timm also lists a larger test size).
- ``torchvision``: ``torchvision.models.*_Weights`` (URL, ``_metrics["ImageNet-1K"]["acc@1"]``,
  ``transforms()`` crop/resize sizes), checked against the installed torchvision by a test.

Hashes: every file name here ends in ``-<first 8+ hex digits of the file's sha256>``, the
convention ``torch.utils.model_zoo``/``torch.hub`` verify (``check_hash``); timm's
``clean_checkpoint.py`` names its files the same way. Only that prefix is known for these files.
"""

from __future__ import annotations

from senet.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from senet.weights.registry import Mirror, register

CADENE = "http://data.lip6.fr/cadene/pretrainedmodels/"
TIMM = "https://github.com/rwightman/pytorch-image-models/releases/download/"
TIMM_RSB = "https://github.com/huggingface/pytorch-image-models/releases/download/v0.1-rsb-weights/"
GLUON = "https://github.com/rwightman/pytorch-pretrained-gluonresnet/releases/download/v0.1/"
TORCHVISION = "https://download.pytorch.org/models/"

REF_ORIGINAL = "Cadene/pretrained-models.pytorch (pretrainedmodels/models/senet.py, README)"
REF_TIMM = "huggingface/pytorch-image-models (default_cfgs; results/results-imagenet.csv)"
REF_TV = "pytorch/vision (torchvision.models.{}_Weights.{})"


def _release_hash(url: str) -> str:
    """The sha256 prefix a release name carries (``se_resnet50-ce0d4300.pth`` → ``ce0d4300``)."""
    return url.rsplit("/", 1)[-1].rsplit(".", 1)[0].rsplit("-", 1)[-1]


# ---- the original release (Sec. 5 models; the paper's layout: stride in the 1×1, ceil-mode pool) ----
# (senet name, timm's GitHub copy, Cadene's file, top-1 in Cadene's README)
_ORIGINAL = [
    ("se_resnet50", "v0.1-cadene/se_resnet50-ce0d4300.pth", "se_resnet50-ce0d4300.pth", 77.636),
    ("se_resnet101", "v0.1-cadene/se_resnet101-7e38fcc6.pth", "se_resnet101-7e38fcc6.pth", 78.396),
    ("se_resnet152", "v0.1-cadene/se_resnet152-d17c99b7.pth", "se_resnet152-d17c99b7.pth", 78.658),
    ("se_resnext50_32x4d", "v0.1-weights/legacy_se_resnext50_32x4d-f3651bad.pth",
     "se_resnext50_32x4d-a260b3a4.pth", 79.076),
    ("se_resnext101_32x4d", "v0.1-weights/legacy_se_resnext101_32x4d-37725eac.pth",
     "se_resnext101_32x4d-3b2fe3d8.pth", 80.236),
    ("senet154", "v0.1-weights/legacy_senet154-e9eb9fe6.pth", "senet154-c7b49a05.pth", 81.304),
]  # fmt: skip
for _model, _timm_copy, _cadene, _top1 in _ORIGINAL:
    register(
        _model, "original", url=TIMM + _timm_copy, sha256=_release_hash(_timm_copy),
        mirrors=(Mirror(CADENE + _cadene, _release_hash(_cadene)),), source="original",
        top1=_top1, input_size=224, crop_pct=0.875, interpolation="bilinear",
        mean=IMAGENET_MEAN, std=IMAGENET_STD, reference=REF_ORIGINAL,
        description="the authors' Caffe release, converted to PyTorch by Cadene (timm legacy_*)",
    )  # fmt: skip

# ---- timm (stride in the 3×3, padded pool: layout="torchvision") ----
# (senet name, tag, URL, top-1, crop_pct, input size, mean/std, description)
_INCEPTION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
_IMAGENET = (IMAGENET_MEAN, IMAGENET_STD)
_TIMM = [
    ("se_resnet50", "ra2_in1k", TIMM + "v0.1-weights/seresnet50_ra_224-8efdb4bb.pth", 80.260, 0.875,
     224, _IMAGENET, "timm seresnet50.ra2_in1k (RandAugment recipe)"),
    ("se_resnet50", "a1_in1k", TIMM_RSB + "seresnet50_a1_0-ffa00869.pth", 80.012, 0.95, 224,
     _IMAGENET, "timm seresnet50.a1_in1k (ResNet strikes back A1)"),
    ("se_resnet50", "a2_in1k", TIMM_RSB + "seresnet50_a2_0-850de0d9.pth", 80.102, 0.95, 224,
     _IMAGENET, "timm seresnet50.a2_in1k (ResNet strikes back A2)"),
    ("se_resnet50", "a3_in1k", TIMM_RSB + "seresnet50_a3_0-317ecd56.pth", 77.036, 0.95, 224,
     _IMAGENET, "timm seresnet50.a3_in1k (ResNet strikes back A3, trained at 160 px)"),
    ("se_resnext50_32x4d", "racm_in1k", TIMM + "v0.1-weights/seresnext50_32x4d_racm-a304a460.pth",
     81.268, 0.875, 224, _IMAGENET, "timm seresnext50_32x4d.racm_in1k"),
    ("se_resnext50_32x4d", "gluon_in1k", GLUON + "gluon_seresnext50_32x4d-90cf2d6e.pth", 79.916,
     0.875, 224, _IMAGENET, "GluonCV SE-ResNeXt-50, ported by timm"),
    ("se_resnext101_32x4d", "gluon_in1k", GLUON + "gluon_seresnext101_32x4d-cf52900d.pth", 80.886,
     0.875, 224, _IMAGENET, "GluonCV SE-ResNeXt-101, ported by timm"),
    ("senet154", "gluon_in1k", GLUON + "gluon_senet154-70a1a3c0.pth", 81.258, 0.875, 224,
     _IMAGENET, "GluonCV SENet-154, ported by timm (stride in the 3×3)"),
    ("resnext50_32x4d", "gluon_in1k", GLUON + "gluon_resnext50_32x4d-e6a097c1.pth", 79.354, 0.875,
     224, _IMAGENET, "GluonCV ResNeXt-50 (32×4d), ported by timm"),
    ("resnext101_32x4d", "gluon_in1k", GLUON + "gluon_resnext101_32x4d-b253c8c4.pth", 80.336, 0.875,
     224, _IMAGENET, "GluonCV ResNeXt-101 (32×4d), ported by timm"),
    # the GitHub file timm served before the HF hub; 80.458 is timm's result for it (2020 csv)
    ("inception_resnet_v2", "tf_in1k", TIMM + "v0.1-weights/inception_resnet_v2-940b1cd6.pth",
     80.458, 0.8975, 299, _INCEPTION, "TF-slim Inception-ResNet-v2, ported by timm"),
]  # fmt: skip
for _model, _tag, _url, _top1, _pct, _size, (_mean, _std), _desc in _TIMM:
    register(
        _model, _tag, url=_url, sha256=_release_hash(_url), source="timm", top1=_top1,
        input_size=_size, crop_pct=_pct, interpolation="bicubic", mean=_mean, std=_std,
        reference=REF_TIMM, description=_desc,
    )  # fmt: skip

# ---- torchvision baselines (layout="torchvision"); V1 first: the classic recipe, closest to the paper ----
# (senet name, torchvision Weights class, member, file, top-1, resize)
_TORCHVISION = [
    ("resnet18", "ResNet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth", 69.758, 256),
    ("resnet34", "ResNet34", "IMAGENET1K_V1", "resnet34-b627a593.pth", 73.314, 256),
    ("resnet50", "ResNet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth", 76.13, 256),
    ("resnet50", "ResNet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 80.858, 232),
    ("resnet101", "ResNet101", "IMAGENET1K_V1", "resnet101-63fe2227.pth", 77.374, 256),
    ("resnet101", "ResNet101", "IMAGENET1K_V2", "resnet101-cd907fc2.pth", 81.886, 232),
    ("resnet152", "ResNet152", "IMAGENET1K_V1", "resnet152-394f9c45.pth", 78.312, 256),
    ("resnet152", "ResNet152", "IMAGENET1K_V2", "resnet152-f82ba261.pth", 82.284, 232),
    ("resnext50_32x4d", "ResNeXt50_32X4D", "IMAGENET1K_V1", "resnext50_32x4d-7cdf4587.pth", 77.618, 256),
    ("resnext50_32x4d", "ResNeXt50_32X4D", "IMAGENET1K_V2", "resnext50_32x4d-1a0047aa.pth", 81.198, 232),
    # the plain twin of SE-VGG-16 (Table 5 uses VGG-16 with BN): torchvision's keys are senet's
    ("vgg16_bn", "VGG16_BN", "IMAGENET1K_V1", "vgg16_bn-6c64b313.pth", 73.36, 256),
]  # fmt: skip
for _model, _cls, _member, _file, _top1, _resize in _TORCHVISION:
    register(
        _model, "tv_in1k" if _member.endswith("V1") else "tv2_in1k", url=TORCHVISION + _file,
        sha256=_release_hash(_file), source="torchvision", default=_member.endswith("V1"),
        top1=_top1, input_size=224,
        resize=_resize, interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD,
        reference=REF_TV.format(_cls, _member),
        description=f"torchvision {_cls}_Weights.{_member}",
    )  # fmt: skip
