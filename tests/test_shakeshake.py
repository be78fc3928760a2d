"""Shake-Shake 26 2×96d and its SE version (Tables 4–5; Gastaldi 2017's CIFAR-10 model)."""

from __future__ import annotations

import pytest
import torch

from senet.layers.se import SEConfig, SqueezeExcitation
from senet.models import build_model, get_entry
from senet.models.shakeshake import ShakeShake, ShakeShakeResNet, ShiftedPairShortcut

PLAIN, SE = "cifar_shakeshake26_2x96d", "cifar_se_shakeshake26_2x96d"


def _nparams(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(name).parameters())


def test_parameter_count_is_the_published_26_2m() -> None:
    """Gastaldi's table prints 26.2 M for 26 2×96d; the exact count is 26,192,922 (BN weights and
    biases counted, bias-free convolutions as in the original, FC 384 → 10 with bias)."""
    assert _nparams(PLAIN) == 26_192_922
    assert round(_nparams(PLAIN) / 1e6, 1) == get_entry(PLAIN).paper.params_m == 26.2
    # SE (r = 16, FC biases) on both branches of all 12 blocks: 8 blocks' worth per width
    per_width = sum(2 * c * (c // 16) + c // 16 + c for c in (96, 192, 384))
    assert _nparams(SE) == 26_192_922 + 8 * per_width == 26_392_170


def test_registry_entries() -> None:
    plain, se = get_entry(PLAIN), get_entry(SE)
    assert se.baseline == PLAIN and se.has_se and not plain.has_se
    assert (plain.paper.top1_err, se.paper.top1_err) == (2.56, 2.12)
    assert (plain.paper.cifar100_top1_err, se.paper.cifar100_top1_err) == (15.85, 15.41)
    assert (se.input_size, se.eval_input_size, se.eval_resize, se.num_classes) == (32, 32, 32, 10)
    with pytest.raises(ValueError, match="no option 'integration'"):
        build_model(SE, integration="pre")


def test_structure_and_shapes() -> None:
    with torch.device("meta"):
        model = build_model(SE)
    assert [len(getattr(model, f"layer{i}")) for i in (1, 2, 3)] == [4, 4, 4]
    assert [f["num_chs"] for f in model.feature_info] == [96, 192, 384]
    first = model.layer1[0]
    assert isinstance(first.shortcut, ShiftedPairShortcut)  # 16 → 96 needs a projection
    assert model.layer1[1].shortcut is None and model.layer2[0].shortcut.stride == 2
    assert first.branch1[0].bias is None and first.se1.channels == first.se2.channels == 96
    ses = [m for m in model.modules() if isinstance(m, SqueezeExcitation)]
    assert len(ses) == 24 and {s.hidden for s in ses} == {6, 12, 24}
    model = ShakeShakeResNet(num_classes=5, se=SEConfig(reduction=4), depth=8, width=16).eval()
    x = torch.randn(3, 3, 32, 32)
    assert model.forward_features(x).shape == (3, 64, 8, 8) and model(x).shape == (3, 5)
    with pytest.raises(ValueError, match="depth=25 must be 6·n"):
        ShakeShakeResNet(depth=25)


def test_shortcut_second_path_sees_the_pixels_the_first_skips() -> None:
    """Path 1 reads h[2i, 2j]; path 2 reads h[2i − 1, 2j − 1] (zero on the first row/column)."""
    sc = ShiftedPairShortcut(2, 4, stride=2).eval()
    with torch.no_grad():
        for conv in (sc.conv1, sc.conv2):
            conv.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
    h = torch.arange(2 * 36, dtype=torch.float32).view(1, 2, 6, 6) + 1
    out = sc(h) * (1 + sc.bn.eps) ** 0.5  # undo the eval BN's 1/sqrt(1 + eps)
    torch.testing.assert_close(out[:, :2], h[:, :, ::2, ::2])
    shifted = torch.zeros_like(h)
    shifted[:, :, 1:, 1:] = h[:, :, :-1, :-1]
    torch.testing.assert_close(out[:, 2:], shifted[:, :, ::2, ::2])


def test_training_forward_is_stochastic_per_image_and_eval_deterministic() -> None:
    torch.manual_seed(0)
    model = ShakeShakeResNet(num_classes=4, se=SEConfig(reduction=4), depth=8, width=16)
    x = torch.randn(1, 3, 16, 16).expand(4, -1, -1, -1).contiguous()  # one image, four times
    train_out = model.train()(x)
    assert not torch.allclose(train_out[0], train_out[1])  # each image draws its own α
    torch.manual_seed(1)
    first = model(x)
    torch.manual_seed(1)
    torch.testing.assert_close(model(x), first)  # reproducible under a fixed generator
    model.eval()
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, model(x), rtol=0, atol=0)
        torch.testing.assert_close(out[0].expand_as(out), out)  # α = 0.5 for every image


def test_mix_uses_alpha_forward_and_an_independent_beta_backward() -> None:
    """Under a fixed generator the mix draws α then β (one per image); the forward is α·a +
    (1 − α)·b and the gradients are β·g and (1 − β)·g — β, not α."""
    mix = ShakeShake().train()
    a = torch.randn(5, 3, 4, 4, requires_grad=True)
    b = torch.randn(5, 3, 4, 4, requires_grad=True)
    g = torch.randn(5, 3, 4, 4)
    torch.manual_seed(7)
    alpha, beta = torch.rand(5, 1, 1, 1), torch.rand(5, 1, 1, 1)
    torch.manual_seed(7)
    out = mix(a, b)
    out.backward(g)
    torch.testing.assert_close(out, alpha * a + (1 - alpha) * b)
    torch.testing.assert_close(a.grad, beta * g)
    torch.testing.assert_close(b.grad, (1 - beta) * g)
    assert not torch.allclose(alpha, beta) and alpha.unique().numel() == 5
    mix.eval()
    torch.testing.assert_close(mix(a, b), (a + b) / 2)


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    model = ShakeShakeResNet(num_classes=3, se=SEConfig(reduction=4), depth=8, width=16).train()
    model(torch.randn(4, 3, 16, 16)).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing, missing
