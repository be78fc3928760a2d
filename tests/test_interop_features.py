"""``create_model(..., features_only=True)``: per-stage feature maps with their channels and strides (issue 5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import senet
from senet.interop.weights_file import save_weights
from senet.models.features import FeatureExtractor


@pytest.mark.parametrize(
    ("name", "channels"),
    [("se_resnet18", [64, 128, 256, 512]), ("cifar_se_resnet20", [16, 32, 64])],
)
def test_stage_maps_have_the_advertised_channels_and_strides(
    name: str, channels: list[int]
) -> None:
    model = senet.create_model(name, features_only=True).eval()
    assert isinstance(model, FeatureExtractor)
    assert model.channels == channels
    size = 64
    feats = model(torch.randn(2, 3, size, size))
    assert len(feats) == len(channels)
    for f, c, r in zip(feats, model.channels, model.reductions):
        assert f.shape == (2, c, size // r, size // r)
    assert model.reductions == ([4, 8, 16, 32] if name == "se_resnet18" else [1, 2, 4])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["se_resnet50", "se_resnext50_32x4d", "resnet101"])
def test_bottleneck_families(name: str) -> None:
    model = senet.create_model(name, features_only=True).eval()
    assert model.channels == [256, 512, 1024, 2048] and model.reductions == [4, 8, 16, 32]
    feats = model(torch.randn(1, 3, 128, 128))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (256, 32, 32),
        (512, 16, 16),
        (1024, 8, 8),
        (2048, 4, 4),
    ]


def test_out_indices_and_agreement_with_forward_features() -> None:
    torch.manual_seed(0)
    full = senet.create_model("se_resnet18").eval()
    feats = senet.create_model("se_resnet18", features_only=True, out_indices=(1, -1))
    feats.model.load_state_dict(
        {k: v for k, v in full.state_dict().items() if not k.startswith("fc.")}
    )
    feats.eval()
    assert feats.out_indices == (1, 3) and feats.channels == [128, 512]
    assert [f["module"] for f in feats.feature_info] == ["layer2", "layer4"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = feats(x)
        assert torch.equal(out[-1], full.forward_features(x))
    assert isinstance(feats.model.fc, nn.Identity)  # the classifier is dropped


def test_checkpoint_loads_before_features(tmp_path) -> None:
    torch.manual_seed(0)
    full = senet.create_model("cifar_se_resnet20").eval()
    path = save_weights(full, tmp_path / "c.safetensors")
    feats = senet.create_model("cifar_se_resnet20", checkpoint=path, features_only=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(feats(x)[-1], full.forward_features(x))


def test_bad_indices_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"valid are 0\.\.2"):
        senet.create_model("cifar_resnet20", features_only=True, out_indices=(0, 3))
    with pytest.raises(ValueError, match="needs features_only=True"):
        senet.create_model("cifar_resnet20", out_indices=(0,))
    with pytest.raises(ValueError, match="no feature_info"):
        FeatureExtractor(nn.Conv2d(3, 3, 1))


class Tiny(nn.Module):
    """Not a ResNet: any model with feature_info and forward_features works (via hooks)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, 2, 1)
        self.b = nn.Conv2d(4, 6, 3, 2, 1)
        self.feature_info = [
            {"module": "a", "num_chs": 4, "reduction": 2},
            {"module": "b", "num_chs": 6, "reduction": 4},
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def test_any_model_with_feature_info() -> None:
    model = FeatureExtractor(Tiny())
    a, b = model(torch.randn(1, 3, 16, 16))
    assert a.shape == (1, 4, 8, 8) and b.shape == (1, 6, 4, 4)
    assert model.channels == [4, 6] and model.reductions == [2, 4]
    assert not model.model.a._forward_hooks  # hooks are removed after each call


QUICK = {"se_mobilenet_v1"}  # one non-residual family (hook path) in the quick run


@pytest.mark.parametrize(
    "name",
    [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in senet.list_models()],
)
def test_every_registered_model_with_feature_info(name: str) -> None:
    """Shapes only (meta device: no memory, no arithmetic): channels and strides are as advertised."""
    with torch.device("meta"):
        model = senet.create_model(name)
        if not getattr(model, "feature_info", None):
            pytest.skip(f"{name} has no feature_info")
        feats = FeatureExtractor(model)
        size = senet.get_entry(name).input_size
        outs = feats(torch.empty(1, 3, size, size))
    assert (
        [o.shape[1] for o in outs] == feats.channels == [f["num_chs"] for f in model.feature_info]
    )
    for o, r in zip(outs, feats.reductions):
        assert (
            abs(o.shape[-1] - size / r) <= 0.1 * size / r + 3
        )  # valid (unpadded) convs lose a few pixels
