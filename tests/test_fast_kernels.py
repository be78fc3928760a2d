"""The fast path's map kernels (senet.layers.fast_ops) against plain formulas, on every kernel choice.

The kernels pick an implementation by device, dtype, layout and size (batch-norm views for NCHW
maps, gate tiles for channels-last maps with few channels, plain ops for small maps). Small test
tensors would only ever take the plain branch, so each test also runs with the size threshold and
the tile width lowered (``forced``), which sends tiny tensors through every branch.
"""

from __future__ import annotations

import pytest
import torch

from senet.layers import fast_ops, ops
from senet.layers.se import SEConfig, SqueezeExcitation
from senet.models.blocks import BasicBlock, Bottleneck

LAYOUTS = {"nchw": torch.contiguous_format, "cl": torch.channels_last}
TOL = {torch.float64: 1e-12, torch.float32: 2e-6, torch.bfloat16: 2e-2}


@pytest.fixture(params=["default", "forced"])
def kernels(request, monkeypatch):
    """``forced``: every map, however small, takes the batch-norm / tiled kernels."""
    if request.param == "forced":
        monkeypatch.setattr(fast_ops, "_SMALL", 1)
        monkeypatch.setattr(fast_ops, "_TILE_ELEMS", 8)
        monkeypatch.setattr(fast_ops, "_PER_SAMPLE", 1)
    return request.param


def _map(shape, dtype, layout, seed):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(shape, generator=g, dtype=torch.float64)
        .to(dtype)
        .contiguous(memory_format=LAYOUTS[layout])
    )


def _close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    scale = expected.abs().max().item() or 1.0
    err = (actual.double() - expected).abs().max().item()
    assert err <= TOL[dtype] * scale, f"error {err:.3g} > {TOL[dtype]} × {scale:.3g}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["nchw", "cl"])
@pytest.mark.parametrize("shape", [(3, 16, 6, 5), (2, 6, 7, 1), (2, 300, 3, 2)])
def test_map_kernels_equal_the_formulas(kernels, dtype, layout, shape):
    """mean, x·s + shortcut, g·s + d and Σ g·x: right values, and the map keeps its layout."""
    x, g, sc = (_map(shape, dtype, layout, i) for i in range(3))
    n, c = shape[:2]
    s = torch.rand(n, c, 1, 1, dtype=torch.float64).to(dtype)
    d = torch.randn(n, c, dtype=torch.float64)
    xd, gd, scd, sd = x.double(), g.double(), sc.double(), s.double()
    _close(fast_ops.mean_hw(x), xd.mean((2, 3)), dtype)
    for out, want in [
        (fast_ops.axpy(x, s, sc), xd * sd + scd),
        (fast_ops.axpy(x, s), xd * sd),
        (fast_ops._affine(g, s, d.to(fast_ops.compute_dtype(dtype))), gd * sd + d.view(n, c, 1, 1)),
    ]:
        assert out.dtype == dtype and out.shape == x.shape
        assert out.is_contiguous(memory_format=LAYOUTS[layout]), "no layout conversion"
        _close(out, want, dtype)
    gs = fast_ops.sum_hw_product(g, x)
    assert gs.dtype == fast_ops.compute_dtype(dtype)
    _close(gs, (gd * xd).sum((2, 3)), dtype)


def test_forced_kernels_really_take_the_other_branches(monkeypatch):
    monkeypatch.setattr(fast_ops, "_SMALL", 1)
    monkeypatch.setattr(fast_ops, "_TILE_ELEMS", 8)
    nchw, cl = (
        _map((2, 6, 4, 3), torch.float32, "nchw", 0),
        _map((2, 6, 4, 3), torch.float32, "cl", 0),
    )
    assert fast_ops._nchw(nchw) and not fast_ops._nchw(cl)
    assert fast_ops._cl_tile(cl) == 2 and fast_ops._cl_tile(nchw) == 0
    assert not fast_ops._cl_bn(cl), "per-sample BN kernel only for large samples"
    monkeypatch.setattr(fast_ops, "_PER_SAMPLE", 1)
    assert fast_ops._cl_bn(cl) and not fast_ops._cl_bn(nchw)
    assert (
        fast_ops._cl_tile(_map((2, 6, 5, 1), torch.float32, "cl", 0)) == 5
    )  # 5 pixels: no smaller divisor ≥ 2
    monkeypatch.undo()
    assert not fast_ops._nchw(nchw) and fast_ops._cl_tile(cl) == 0, "small maps: plain ops"
    big = _map((2, 16, 32, 32), torch.float32, "cl", 0)
    assert (
        fast_ops._cl_tile(big) == 16
        and fast_ops._cl_tile(_map((2, 256, 8, 8), torch.float32, "cl", 0)) == 0
    )


@pytest.mark.parametrize("layout", ["nchw", "cl"])
@pytest.mark.parametrize("mode", ["scale", "add_relu"])
def test_whole_block_function_gradcheck_on_every_kernel(kernels, layout, mode):
    """float64 gradcheck of the fused SE Function, on the batch-norm and tiled kernels too."""
    torch.manual_seed(1)
    se = SqueezeExcitation(6, 2).double()
    fmt = LAYOUTS[layout]
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64).contiguous(memory_format=fmt)
    sc = torch.randn(2, 6, 3, 4, dtype=torch.float64).contiguous(memory_format=fmt)
    params = [se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias]

    def f(x, sc, w1, b1, w2, b2):
        for p, v in zip(params, (w1, b1, w2, b2), strict=True):
            p.data = v.detach()
        shortcut = None if mode == "scale" else sc
        return fast_ops._SqueezeExcite.apply(x, shortcut, w1, b1, w2, b2, se, mode == "add_relu")

    inputs = (
        x.requires_grad_(),
        sc.requires_grad_(),
        *(p.detach().clone().requires_grad_() for p in params),
    )
    assert torch.autograd.gradcheck(f, inputs)


@pytest.mark.parametrize("layout", ["nchw", "cl"])
@pytest.mark.parametrize("squeeze", ["avg", "max"])
def test_blocks_fast_equals_reference_on_every_kernel(kernels, layout, squeeze):
    """A bottleneck and a basic block, training step: outputs and every gradient (float32)."""
    torch.manual_seed(2)
    fmt = LAYOUTS[layout]
    for block in (
        Bottleneck(32, 8, 1, None, SEConfig(reduction=4, squeeze=squeeze)),
        BasicBlock(16, 16, 1, None, SEConfig(reduction=4, squeeze=squeeze, integration="pre")),
    ):
        block = block.train().to(memory_format=fmt)
        x = torch.randn(3, block.conv1.in_channels, 6, 5).contiguous(memory_format=fmt)
        results = []
        for path in (ops.fast_path, ops.reference_path):
            xi = x.clone().requires_grad_()
            block.zero_grad(set_to_none=True)
            with path():
                y = block(xi)
                (y * torch.linspace(-1, 1, y.numel()).view(y.shape)).sum().backward()
            results.append([y.detach(), xi.grad] + [p.grad for p in block.parameters()])
            if path is ops.fast_path:
                assert xi.grad.is_contiguous(memory_format=fmt), "d/dx keeps the layout"
        for a, b in zip(*results, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layout", ["nchw", "cl"])
def test_bf16_autocast_keeps_dtype_and_layout(kernels, layout):
    """Under bf16 autocast the fused path keeps the map in bf16 and in its layout, computes the
    gate in float32 (what the gate_out hook sees), and trains the float32 FC weights without
    casting them."""
    torch.manual_seed(3)
    fmt = LAYOUTS[layout]
    block = Bottleneck(32, 8, 1, None, SEConfig(reduction=4)).train().to(memory_format=fmt)
    # a bf16 block input, as autocast hands every block after the stem
    x = torch.randn(2, 32, 6, 6).to(torch.bfloat16).contiguous(memory_format=fmt)
    seen = []
    block.se.gate_out.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with ops.fast_path(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(x)
    y.float().sum().backward()
    (s,) = seen
    assert s.dtype == torch.float32 and y.dtype == torch.bfloat16
    assert y.is_contiguous(memory_format=fmt)
    assert block.se.fc1.weight.grad.dtype == torch.float32
    assert torch.isfinite(block.se.fc1.weight.grad).all()


def test_bf16_relative_gate_error_beats_the_reference():
    """The float32 excitation's gate is closer to float64 truth than the bf16 reference's."""
    torch.manual_seed(4)
    se = SqueezeExcitation(64, 4).train()
    x = torch.randn(4, 64, 8, 8).to(torch.bfloat16)
    truth = torch.sigmoid(
        se.fc2(torch.relu(se.fc1(x.double().mean((2, 3), keepdim=True).float())))
    ).double()
    gates = {}
    for name, path in (("fast", ops.fast_path), ("reference", ops.reference_path)):
        seen = []
        h = se.gate_out.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out))
        with path(), torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
            se(x)
        h.remove()
        gates[name] = (seen[0].double() - truth).abs().max().item()
    assert gates["fast"] <= gates["reference"], gates
