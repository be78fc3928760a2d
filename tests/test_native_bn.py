"""The BatchNorm + SE node (``native.bn_squeeze_excite``): a residual block's last BatchNorm run
inside the SE block's passes. Against ``bn(y)`` followed by the ATen path: output, every
gradient, running statistics; where it applies and where it must not."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from torch import nn

from senet.layers import fast_ops, native, ops
from senet.layers.se import SEConfig, SqueezeExcitation
from senet.models.blocks import BasicBlock, Bottleneck
from test_native import CL, _map, _spy


def _bn(c: int, seed: int, training: bool, momentum: float | None = 0.1) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(c, momentum=momentum)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
        bn.bias.copy_(torch.rand(c, generator=g) - 0.5)
        bn.running_mean.copy_(torch.randn(c, generator=g))
        bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return bn.train(training)


def _run(se, bn, y0, sc0, gy, relu, amp, steps=1):
    """Output, gradients (y, shortcut, BN, SE) and BN buffers after ``steps`` calls."""
    y, sc = y0.clone().requires_grad_(), None if sc0 is None else sc0.clone().requires_grad_()
    for _ in range(steps):
        se.zero_grad(set_to_none=True)
        bn.zero_grad(set_to_none=True)
        y.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = fast_ops.bn_squeeze_excite(se, bn, y, sc, relu)
        out.backward(gy)
    grads = [y.grad] + ([] if sc is None else [sc.grad])
    grads += [p.grad for p in (*bn.parameters(), *se.parameters())]
    return [out, *grads], [b.clone() for b in bn.buffers()]


def _error(a: torch.Tensor, truth: torch.Tensor) -> float:
    return ((a.double() - truth).norm() / truth.norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("fmt", [CL, torch.contiguous_format], ids=["cl", "nchw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    ("n", "c", "relu", "shortcut", "gate"),
    [
        (4, 64, True, True, "sigmoid"),
        (1, 100, True, True, "sigmoid"),  # batch 1: HW split, a partial 64-channel block
        (12, 24, False, True, "tanh"),
        (2, 7, False, False, "relu"),
    ],
)
def test_node_equals_batchnorm_then_aten(
    kernels, monkeypatch, fmt, dtype, training, n, c, relu, shortcut, gate
):
    """Two steps (the second in training sees the running statistics the first updated):
    output, d/dy, d/dshortcut, d/dγ, d/dβ, the FC gradients, running mean and variance and
    num_batches_tracked equal BatchNorm2d followed by the ATen path."""
    monkeypatch.setattr(native, "_SMALL", 1)
    torch.manual_seed(c)
    se = SqueezeExcitation(c, 4, gate=gate)
    y0, sc0, gy = (_map((n, c, 9, 7), dtype, fmt, i) for i in range(3))
    y0 = (y0.float() * 2 + 3).to(dtype)  # a mean away from zero
    sc0 = sc0 if shortcut else None
    amp = dtype == torch.bfloat16
    calls = _spy(monkeypatch, "bn_squeeze_excite")
    node, node_stats = _run(se, _bn(c, 0, training), y0, sc0, gy, relu, amp, steps=2)
    assert calls == ["bn_squeeze_excite"] * 2
    monkeypatch.setattr(native, "applies", lambda *maps: False)
    aten, aten_stats = _run(se, _bn(c, 0, training), y0, sc0, gy, relu, amp, steps=2)
    torch.testing.assert_close(node_stats, aten_stats, rtol=1e-5, atol=1e-6)
    for a, b in zip(node, aten, strict=True):
        assert a.dtype == b.dtype and a.stride() == b.stride()
    if dtype == torch.float32:
        for a, b in zip(node, aten, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())
        return
    # bf16: the node never rounds bn(y) nor the gradients inside the block to bf16, so it is
    # compared with ATen against float64 arithmetic on the same inputs: at least as accurate
    se64, sc64 = copy.deepcopy(se).double(), None if sc0 is None else sc0.double()
    truth, _ = _run(
        se64, _bn(c, 0, training).double(), y0.double(), sc64, gy.double(), relu, False, 2
    )
    for a, b, t in zip(node, aten, truth, strict=True):
        assert _error(a, t) <= max(1e-2, 1.1 * _error(b, t)), (_error(a, t), _error(b, t))


def test_momentum_none_is_the_cumulative_average(kernels, monkeypatch):
    monkeypatch.setattr(native, "_SMALL", 1)
    se = SqueezeExcitation(16, 4)
    y0, sc0, gy = (_map((3, 16, 8, 8), torch.float32, CL, i) for i in range(3))
    _, node = _run(se, _bn(16, 1, True, momentum=None), y0, sc0, gy, True, False, steps=3)
    monkeypatch.setattr(native, "applies", lambda *maps: False)
    _, aten = _run(se, _bn(16, 1, True, momentum=None), y0, sc0, gy, True, False, steps=3)
    torch.testing.assert_close(node, aten, rtol=1e-5, atol=1e-6)
    assert node[2].item() == 3


@pytest.mark.parametrize("fmt", [CL, torch.contiguous_format], ids=["cl", "nchw"])
def test_variance_of_a_channel_far_from_zero(kernels, monkeypatch, fmt):
    """Channels whose mean is 1000× their spread: the one-pass statistics (sums shifted by a
    sample of each channel) still give the variance to float32 accuracy; an unshifted sum of
    squares would lose it entirely (E[y²] - mean² with E[y²] ≈ 10⁶ for a variance of 1)."""
    monkeypatch.setattr(native, "_SMALL", 1)
    se, bn = SqueezeExcitation(64, 4), _bn(64, 2, True, momentum=1.0)
    y = (_map((8, 64, 16, 16), torch.float64, fmt, 0) + 1000).float().contiguous(memory_format=fmt)
    with torch.no_grad():
        fast_ops.bn_squeeze_excite(se, bn, y, None, True)
    want = y.double().var((0, 2, 3), unbiased=True)
    torch.testing.assert_close(bn.running_var.double(), want, rtol=1e-4, atol=0)
    torch.testing.assert_close(
        bn.running_mean.double(), y.double().mean((0, 2, 3)), rtol=1e-6, atol=0
    )


def test_one_value_per_channel_is_refused_in_training(kernels, monkeypatch):
    monkeypatch.setattr(native, "_SMALL", 1)
    se, bn = SqueezeExcitation(16, 4), _bn(16, 0, True)
    with pytest.raises(RuntimeError, match="more than 1 value per channel"):
        fast_ops.bn_squeeze_excite(se, bn, torch.randn(1, 16, 1, 1), None, True)


class _MyBatchNorm(nn.BatchNorm2d):
    def forward(self, x):
        return super().forward(x) * 0.5


@pytest.mark.parametrize(
    "case",
    ["hooked", "pruned", "subclass", "no_running_stats", "not_affine", "bf16_params", "outside"],
)
def test_batchnorms_the_node_cannot_replace_run_as_modules(kernels, monkeypatch, case):
    """A hook on the BN (it must see ``bn(y)``), a pruned BN (its weight is recomputed by a
    hook), a subclass (its own forward), no running statistics, no affine parameters, bf16
    parameters, and within ``batchnorm_outside`` (benchmarks): ``bn(y)`` then the SE node."""
    monkeypatch.setattr(native, "_SMALL", 1)
    se = SqueezeExcitation(16, 4)
    bn = {
        "subclass": _MyBatchNorm(16),
        "no_running_stats": nn.BatchNorm2d(16, track_running_stats=False),
        "not_affine": nn.BatchNorm2d(16, affine=False),
    }.get(case, nn.BatchNorm2d(16))
    seen = []
    if case == "hooked":
        bn.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    if case == "pruned":  # weight becomes weight_orig × mask, applied by a forward pre-hook
        from torch.nn.utils import prune

        prune.l1_unstructured(bn, "weight", amount=0.5)
    y = _map((2, 16, 8, 8), torch.float32, CL, 0)
    if case == "bf16_params":
        bn, se, y = bn.bfloat16(), se.bfloat16(), y.bfloat16()
    calls = _spy(monkeypatch, "bn_squeeze_excite", "squeeze_excite")
    outside = native.batchnorm_outside() if case == "outside" else contextlib.nullcontext()
    with outside:
        out = fast_ops.bn_squeeze_excite(se, bn, y, None, True)
    assert calls == ["squeeze_excite"], "bn(y), then the SE node"
    assert seen == ([(2, 16, 8, 8)] if case == "hooked" else [])
    torch.testing.assert_close(out, fast_ops.squeeze_excite(se, bn(y), None, True))


class _Halve(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * 0.5


@pytest.mark.parametrize("bias", [True, False])
def test_fc_weights_of_parametrized_layers(kernels, monkeypatch, bias):
    """``_fc_weights`` reads plain parameters from the modules' dicts (fast); a parametrized
    ``fc1.weight`` (pruning, weight norm) is not in that dict and must come from the module, so
    the node computes with the weight the layer uses."""
    from torch.nn.utils import parametrize

    monkeypatch.setattr(native, "_SMALL", 1)
    se = SqueezeExcitation(16, 4, bias=bias)
    plain = fast_ops._fc_weights(se)
    assert plain == (se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias)
    reference = copy.deepcopy(se)
    with torch.no_grad():
        reference.fc1.weight.mul_(0.5)
    parametrize.register_parametrization(se.fc1, "weight", _Halve())
    w1 = fast_ops._fc_weights(se)[0]
    torch.testing.assert_close(w1, reference.fc1.weight)
    bn = _bn(16, 0, training=False)
    y, sc = _map((2, 16, 8, 8), torch.float32, CL, 0), _map((2, 16, 8, 8), torch.float32, CL, 1)
    calls = _spy(monkeypatch, "bn_squeeze_excite")
    with torch.no_grad():
        out = fast_ops.bn_squeeze_excite(se, bn, y, sc, True)
        want = fast_ops.bn_squeeze_excite(reference, bn, y, sc, True)
    assert calls == ["bn_squeeze_excite"] * 2
    torch.testing.assert_close(out, want)


@pytest.mark.parametrize("make", [BasicBlock, Bottleneck])
def test_blocks_take_the_node_only_for_the_standard_integration(kernels, monkeypatch, make):
    """Standard SE blocks run their last BN inside the node; the plain block, SE-PRE and
    SE-POST run the BN module as before; output and state (running statistics) equal the
    reference path's after a training step."""
    monkeypatch.setattr(native, "_SMALL", 1)
    x = _map((2, 64, 8, 8), torch.float32, CL, 0)
    planes = 64 if make is BasicBlock else 16
    calls = _spy(monkeypatch, "bn_squeeze_excite")
    for integration in ("standard", "pre", "post", None):
        se = None if integration is None else SEConfig(reduction=4, integration=integration)
        torch.manual_seed(0)
        block = make(64, planes, se=se).train()
        torch.manual_seed(0)
        reference = make(64, planes, se=se).train()
        calls.clear()
        got = block(x)
        assert calls == (["bn_squeeze_excite"] if integration == "standard" else []), integration
        with ops.reference_path():
            want = reference(x)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(block.state_dict(), reference.state_dict(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt", [CL, torch.contiguous_format], ids=["cl", "nchw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("n", "gate"), [(1, "sigmoid"), (8, "tanh"), (9, "relu"), (3, "sigmoid")])
def test_forward_without_gradients_equals_batchnorm_then_aten(
    kernels, monkeypatch, fmt, dtype, n, gate
):
    """No gradient wanted (``no_grad``, ``inference_mode``): N ≤ 8 in eval mode takes the
    forward's own per-channel loops, N = 9 the general forward; a training-mode BN under
    ``no_grad`` (statistics recalibration) still updates its running statistics."""
    monkeypatch.setattr(native, "_SMALL", 1)
    torch.manual_seed(n)
    se = SqueezeExcitation(48, 4, gate=gate)
    y, sc = (_map((n, 48, 9, 7), dtype, fmt, i) for i in range(2))
    amp = dtype == torch.bfloat16
    training = n == 3
    bn_node, bn_aten = _bn(48, 0, training), _bn(48, 0, training)
    calls = _spy(monkeypatch, "bn_squeeze_excite")
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        with torch.inference_mode():
            node = fast_ops.bn_squeeze_excite(se, bn_node, y, sc, True)
        with torch.no_grad():
            node_no_grad = fast_ops.bn_squeeze_excite(se, bn_node, y, sc, True)
        assert calls == ["bn_squeeze_excite"] * 2
        monkeypatch.setattr(native, "applies", lambda *maps: False)
        with torch.no_grad():
            aten = fast_ops.bn_squeeze_excite(se, bn_aten, y, sc, True)
            aten_no_grad = fast_ops.bn_squeeze_excite(se, bn_aten, y, sc, True)
    torch.testing.assert_close(
        list(bn_node.buffers()), list(bn_aten.buffers()), rtol=1e-5, atol=1e-6
    )
    for a, b in ((node, aten), (node_no_grad, aten_no_grad)):
        assert a.dtype == b.dtype and a.stride() == b.stride()
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(a.float(), b.float(), rtol=tol, atol=tol * b.abs().max().item())
