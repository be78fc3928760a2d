"""Convolutions with oneDNN-packed weights (senet.layers.prepack): same results as ``F.conv2d``,
exact fallbacks wherever the packed kernel would compute something else, and survival of
copies, pickling and weight changes."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import senet
from senet.layers import SqueezeExcitation
from senet.layers.fuse import optimize_for_inference
from senet.layers.prepack import PackedConv2d, prepack_available, prepack_convolutions

needs_onednn = pytest.mark.skipif(
    not prepack_available(torch.float32), reason="this PyTorch build has no oneDNN (mkldnn) on CPU"
)
CL = torch.channels_last

CONVS = {
    "3x3": dict(in_channels=8, out_channels=16, kernel_size=3, padding=1),
    "strided-no-bias": dict(
        in_channels=8, out_channels=12, kernel_size=3, stride=2, padding=1, bias=False
    ),
    "grouped": dict(in_channels=16, out_channels=16, kernel_size=3, padding=1, groups=4),
    "depthwise-dilated": dict(
        in_channels=8, out_channels=8, kernel_size=3, padding=2, dilation=2, groups=8
    ),
    "1x1": dict(in_channels=8, out_channels=32, kernel_size=1),
}


def _packed(conv: nn.Conv2d, x: torch.Tensor) -> PackedConv2d:
    model = nn.Sequential(conv)
    assert prepack_convolutions(model, x) == 1
    assert isinstance(model[0], PackedConv2d) and model[0].weight is conv.weight
    return model[0]


@needs_onednn
@pytest.mark.parametrize("layout", ["nchw", "cl"])
@pytest.mark.parametrize("kind", list(CONVS))
def test_packed_conv_equals_conv2d_for_any_input_shape(kind, layout):
    torch.manual_seed(0)
    conv = nn.Conv2d(**CONVS[kind]).eval()
    packed = _packed(conv, torch.randn(1, conv.in_channels, 10, 10))
    for shape in [(1, 10, 10), (3, 7, 12)]:  # the packing shape and another one
        x = torch.randn(shape[0], conv.in_channels, *shape[1:])
        if layout == "cl":
            x = x.contiguous(memory_format=CL)
        with torch.no_grad():
            got, want = packed(x), conv(x)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_packed_conv_falls_back_exactly_where_packing_does_not_apply():
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 6, 3, padding=1)
    packed = _packed(conv, torch.randn(1, 4, 8, 8))
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    # gradient wanted: the ordinary convolution, so training through it still works
    packed(x).square().sum().backward()
    g_packed, gx_packed = conv.weight.grad.clone(), x.grad.clone()
    conv.weight.grad = None
    x.grad = None
    conv(x).square().sum().backward()
    torch.testing.assert_close(g_packed, conv.weight.grad, rtol=0, atol=0)
    torch.testing.assert_close(gx_packed, x.grad, rtol=0, atol=0)
    with torch.no_grad():
        # autocast: what autocast's conv2d computes (bf16), not a float32 packed convolution
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, want = packed(x), conv(x)
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        # float64 input and weights: not packable, plain conv2d
        conv64 = copy.deepcopy(conv).double()
        packed64 = _packed_or_plain(conv64, x.double())
        torch.testing.assert_close(packed64(x.double()), conv64(x.double()), rtol=0, atol=0)


def _packed_or_plain(conv: nn.Conv2d, x: torch.Tensor) -> nn.Module:
    model = nn.Sequential(conv)
    assert prepack_convolutions(model, x) == 0, "float64 weights are not packed"
    return model[0]


@needs_onednn
def test_packed_conv_repacks_after_weight_changes_and_survives_copies():
    torch.manual_seed(2)
    conv = nn.Conv2d(4, 6, 3, padding=1).eval().requires_grad_(False)
    packed = _packed(conv, torch.randn(1, 4, 8, 8))
    x = torch.randn(2, 4, 8, 8)
    other = nn.Conv2d(4, 6, 3, padding=1)
    packed.load_state_dict(other.state_dict())  # in place: the weight's version changes
    torch.testing.assert_close(packed(x), other(x).detach(), rtol=1e-5, atol=1e-5)
    for clone in (copy.deepcopy(packed), pickle.loads(pickle.dumps(packed))):
        assert isinstance(clone, PackedConv2d)
        torch.testing.assert_close(clone(x), packed(x), rtol=0, atol=0)
    buf = io.BytesIO()
    torch.save(packed.state_dict(), buf)
    buf.seek(0)
    assert set(torch.load(buf, weights_only=True)) == {"weight", "bias"}
    packed.to(torch.bfloat16)  # a new weight tensor: repacked in bf16 (or plain conv2d)
    got = packed(x.bfloat16())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), other(x).detach(), rtol=0.05, atol=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 input and weight: nothing to cast
        torch.testing.assert_close(packed(x.bfloat16()), got, rtol=0, atol=0)


@needs_onednn
def test_prepack_skips_what_it_cannot_pack():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding="same"),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"),
        nn.Conv2d(4, 4, 3, padding=1),
    ).eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        want = model(x)
    assert prepack_convolutions(model, x) == 1
    assert [type(m) for m in model][:3] == [nn.Conv2d, nn.Conv2d, PackedConv2d]
    with torch.no_grad():
        torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("name", ["cifar_se_resnet20", "se_resnext50_32x4d"])
@pytest.mark.parametrize("layout", ["nchw", "cl"])
def test_optimize_for_inference_packs_and_keeps_the_outputs(name, layout):
    torch.manual_seed(3)
    model = senet.create_model(name, num_classes=10).eval()
    size = 32 if name.startswith("cifar") else 64
    x = torch.randn(2, 3, size, size)
    if layout == "cl":
        model, x = model.to(memory_format=CL), x.contiguous(memory_format=CL)
    plain = optimize_for_inference(model, example=x[:1], prepack=False)
    fast = optimize_for_inference(model, example=x[:1])
    se_fcs = {
        id(m) for se in plain.modules() if isinstance(se, SqueezeExcitation) for m in se.modules()
    }
    n_convs = sum(type(m) is nn.Conv2d and id(m) not in se_fcs for m in plain.modules())
    # every convolution that runs on the map is packed (SE's FCs run as matrix products)
    assert sum(isinstance(m, PackedConv2d) for m in fast.modules()) == n_convs > 0
    assert fast.state_dict().keys() == plain.state_dict().keys()
    out = fast(x)  # grad mode on: the parameters no longer require grad, so packed all the same
    assert not out.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(out, plain(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(F.softmax(out, 1), F.softmax(model(x), 1), rtol=1e-4, atol=1e-4)


@needs_onednn
def test_optimize_for_inference_under_inference_mode():
    """Built and run inside ``torch.inference_mode`` (as ``senet predict --optimize`` does): its
    tensors have no version counter, and the packed weights still follow weight replacement."""
    torch.manual_seed(4)
    model = senet.create_model("cifar_se_resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        fast = optimize_for_inference(model, example=x[:1])
        want = optimize_for_inference(model, example=x[:1], prepack=False)(x)
        torch.testing.assert_close(fast(x), want, rtol=1e-4, atol=1e-4)
        stem = next(m for m in fast.modules() if isinstance(m, PackedConv2d))
        assert stem.in_channels == 3
        stem.weight = nn.Parameter(torch.zeros_like(stem.weight), requires_grad=False)
        out = stem(x)  # repacked: zero weights leave the (folded BN) bias alone
        torch.testing.assert_close(out, stem.bias.view(1, -1, 1, 1).expand_as(out))


@needs_onednn
def test_a_convolution_onednn_refuses_stays_plain(monkeypatch):
    def refuse(*_args):
        raise RuntimeError("no such oneDNN configuration")

    monkeypatch.setattr(PackedConv2d, "_pack", lambda self: refuse())
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)).eval()
    with pytest.warns(UserWarning, match=r"0 left unpacked \(no such oneDNN configuration\)"):
        assert prepack_convolutions(model, torch.randn(1, 3, 8, 8)) == 0
    assert type(model[0]) is nn.Conv2d
