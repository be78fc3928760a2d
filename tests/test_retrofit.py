"""``senet.add_se`` (issue 4): SE blocks retrofitted into torchvision, timm and senet ResNets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from senet.layers.se import SqueezeExcitation
from senet.models import add_se, build_model
from senet.models import blocks as senet_blocks

torchvision = pytest.importorskip("torchvision")

MODES = ["standard", "pre", "post", "identity", "3x3"]


def _nparams(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _se_blocks(model: nn.Module) -> list[SqueezeExcitation]:
    return [m for m in model.modules() if isinstance(m, SqueezeExcitation)]


def _rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_torchvision_resnet50_matches_our_se_resnet50() -> None:
    """Same parameter count and keys as se_resnet50(layout="torchvision"), and equal outputs."""
    torch.manual_seed(0)
    tv = add_se(torchvision.models.resnet50())
    ours = build_model("se_resnet50", layout="torchvision")
    assert _nparams(tv) == _nparams(ours) == 28_088_024  # PAPER.md: timm seresnet50
    assert list(tv.state_dict()) == list(ours.state_dict())
    ours.load_state_dict(tv.state_dict())
    tv.eval(), ours.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(tv(x), ours(x), rtol=0, atol=0)


def test_original_weights_untouched_and_start_close() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params_before = {k: p for k, p in model.named_parameters()}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        add_se(model)
        start = model(x)
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    for key, param in model.named_parameters():
        if ".se." not in key:
            assert param is params_before[key], f"{key} is a new tensor"
    assert not model.training  # the retrofitted blocks keep the model's mode
    with torch.no_grad():
        fresh = add_se(torchvision.models.resnet18().eval(), init="default")
        fresh.load_state_dict(model.state_dict())
        for se in _se_blocks(fresh):  # put back default-initialised SE layers
            nn.init.kaiming_normal_(se.fc2.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(se.fc2.bias)
        default = fresh(x)
    assert _rel_diff(start, ref) < 0.1
    assert _rel_diff(start, ref) < _rel_diff(default, ref) / 2


def test_relu_gate_with_unit_start_is_exactly_the_original() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        add_se(model, gate="relu", start_gate=1.0)
        torch.testing.assert_close(model(x), ref)


@pytest.mark.parametrize("mode", MODES)
def test_every_integration_mode(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = add_se(torchvision.models.resnet18(num_classes=5), mode=mode, stages=(3, 4))
    assert [type(b) for b in model.layer3] == [senet_blocks.BasicBlock] * 2
    assert all(b.integration == mode for b in [*model.layer3, *model.layer4])
    assert not _se_blocks(model.layer1) and not _se_blocks(model.layer2)
    seen = []
    excite = SqueezeExcitation.excite  # every avg/max-squeeze gate goes through it, fused or not

    def recording(se: SqueezeExcitation, z: torch.Tensor) -> torch.Tensor:
        seen.append((se.channels, z.shape[1]))
        return excite(se, z)

    monkeypatch.setattr(SqueezeExcitation, "excite", recording)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert len(seen) == 4 and all(c == got for c, got in seen)  # each SE sees its own width
    assert all(se.fc2.weight.grad.abs().sum() > 0 for se in _se_blocks(model))
    # SE-PRE squeezes the block input (the first layer4 block's input has 256 channels)
    first = model.layer4[0].se.channels
    assert first == {"pre": 256}.get(mode, 512)


@pytest.mark.parametrize(
    ("tv_name", "ours"), [("resnext50_32x4d", "se_resnext50_32x4d"), ("resnet18", "se_resnet18")]
)
def test_parameter_count_matches_our_se_networks(tv_name: str, ours: str) -> None:
    with torch.device("meta"):
        tv = add_se(getattr(torchvision.models, tv_name)())
        reference = build_model(ours, layout="torchvision")
    assert _nparams(tv) == _nparams(reference)


def test_wide_resnet_and_mode_3x3_widths() -> None:
    with torch.device("meta"):
        model = add_se(torchvision.models.wide_resnet50_2(), mode="3x3")
        plain = torchvision.models.wide_resnet50_2()
    widths = [se.channels for se in _se_blocks(model)]
    assert widths[0] == 128 and widths[-1] == 1024  # the 3×3 conv's width, 2× ResNet-50's
    extra = sum(2 * c * (c // 16) + c // 16 + c for c in widths)
    assert _nparams(model) - _nparams(plain) == extra


def test_timm_resnets() -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for name in ("resnet18", "resnet26d"):
        model = timm.create_model(name, num_classes=3).eval()
        with torch.no_grad():
            ref = model(x)
        add_se(model, mode="pre", stages=(2, 3, 4))
        assert len(_se_blocks(model)) == sum(len(getattr(model, f"layer{i}")) for i in (2, 3, 4))
        with torch.no_grad():
            assert _rel_diff(model(x), ref) < 0.1
        model.train()
        model(x).sum().backward()


def test_senet_plain_resnet_becomes_our_se_resnet() -> None:
    with torch.device("meta"):
        model = add_se(build_model("resnet34"), reduction=8)
        reference = build_model("se_resnet34", reduction=8)
    assert _nparams(model) == _nparams(reference)
    assert list(model.state_dict()) == list(reference.state_dict())


def test_unknown_model_is_refused_naming_its_blocks() -> None:
    with torch.device("meta"):
        vgg, mobilenet = torchvision.models.vgg11(), torchvision.models.mobilenet_v2()
    with pytest.raises(ValueError, match=r"does not know how to retrofit VGG.*Conv2d.*MaxPool2d"):
        add_se(vgg)
    with pytest.raises(ValueError, match="InvertedResidual"):
        add_se(mobilenet)


def test_models_with_se_or_unsupported_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="already has an SE block"):
        add_se(build_model("se_resnet18"))
    model = add_se(torchvision.models.resnet18())
    with pytest.raises(ValueError, match="already has an SE block"):
        add_se(model)
    timm = pytest.importorskip("timm")
    with pytest.raises(ValueError, match="already has an attention module"):
        add_se(timm.create_model("seresnet18"))
    with pytest.raises(ValueError, match="drop_path"):
        add_se(timm.create_model("resnet18", drop_path_rate=0.1))


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match=r"stages=\(5,\).*1=layer1"):
        add_se(torchvision.models.resnet18(), stages=(5,))
    with pytest.raises(ValueError, match="integration"):
        add_se(torchvision.models.resnet18(), mode="middle")
    with pytest.raises(ValueError, match="se_bias=True"):
        add_se(torchvision.models.resnet18(), se_bias=False)
    with pytest.raises(ValueError, match="start_gate"):
        add_se(torchvision.models.resnet18(), start_gate=1.0)
    with pytest.raises(ValueError, match="init="):
        add_se(torchvision.models.resnet18(), init="zeros")
    model = add_se(torchvision.models.resnet18(), se_bias=False, init="default")
    assert all(se.fc1.bias is None for se in _se_blocks(model))
