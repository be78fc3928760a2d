"""The fast SE path equals the reference path (issue 7): outputs, gradients, training curves.

Tolerances: single blocks are compared directly (float32: rtol 1e-5 on outputs, 1e-4 on
gradients; bfloat16: 2e-2). Whole networks are compared in float64 (outputs and every gradient to
1e-8) and by their float32 outputs (1e-4); see ``_assert_network_paths_agree`` for why float32
gradients of a whole deep network are not a fair comparison of two correct paths.
"""

from __future__ import annotations

import copy
import itertools
import os
import subprocess
import sys

import pytest
import torch

import senet
from _helpers import randomize_bn
from senet.layers import ops
from senet.layers.fuse import (
    cast_for_inference,
    fold_batchnorm,
    optimize_for_inference,
    squeeze_early,
)
from senet.layers.se import SEConfig, SqueezeExcitation
from senet.models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck

LAYOUTS = {"nchw": torch.contiguous_format, "cl": torch.channels_last}


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these are numerical checks of small tensors, and on a shared, busy
    machine two OpenMP threads spend most of their time waiting for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(
    module: torch.nn.Module,
    inputs: list[torch.Tensor],
    fast: bool,
    seed: int = 0,
    autocast: torch.dtype | None = None,
):
    """Output and gradients (inputs, then parameters) of ``module`` on one path; ``autocast``:
    the forward (only) under autocast to that dtype."""
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    module.zero_grad(set_to_none=True)
    ctx = ops.fast_path() if fast else ops.reference_path()
    device = inputs[0].device.type
    with ctx:
        with torch.autocast(device, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            y = module(*inputs)
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(y.shape, generator=g, dtype=torch.float32).to(y.device, y.dtype)
        (y * w).sum().backward()
    grads = [x.grad for x in inputs] + [p.grad for p in module.parameters()]
    return y.detach(), grads


def _assert_close(a, b, rtol, atol, what):
    for i, (x, y) in enumerate(zip(a, b)):
        if x is None and y is None:
            continue
        assert x is not None and y is not None, f"{what}[{i}]: one path produced no gradient"
        torch.testing.assert_close(
            x.float(), y.float(), rtol=rtol, atol=atol, msg=lambda m, i=i: f"{what}[{i}]: {m}"
        )


def _fast_equals_reference(module, inputs, rtol=1e-5, grad_rtol=1e-4, atol=1e-5):
    yf, gf = _run(module, inputs, fast=True)
    yr, gr = _run(module, inputs, fast=False)
    assert yf.shape == yr.shape
    # both paths must actually train every parameter
    assert all(g is not None for g in gf[len(inputs) :])
    torch.testing.assert_close(yf, yr, rtol=rtol, atol=atol)
    _assert_close(gf, gr, grad_rtol, atol, "grad")


BLOCK_OPTIONS = list(
    itertools.product(("avg", "max", "none"), ("sigmoid", "tanh", "relu"), (True, False))
)


@pytest.mark.parametrize("squeeze,gate,bias", BLOCK_OPTIONS)
@pytest.mark.parametrize("layout", ["nchw", "cl"])
def test_block_options_fast_equals_reference(squeeze, gate, bias, layout):
    """Every squeeze × gate × bias, in a bottleneck (standard integration), batch 1 and 3."""
    torch.manual_seed(0)
    se = SEConfig(reduction=4, squeeze=squeeze, gate=gate, bias=bias)
    block = Bottleneck(32, 8, 1, None, se).train().to(memory_format=LAYOUTS[layout])
    for batch in (1, 3):
        x = torch.randn(batch, 32, 6, 5).contiguous(memory_format=LAYOUTS[layout])
        _fast_equals_reference(block, [x])


@pytest.mark.parametrize("integration", ["standard", "pre", "post", "identity", "3x3"])
@pytest.mark.parametrize("block_cls", [BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck])
@pytest.mark.parametrize("layout", ["nchw", "cl"])
def test_integration_modes_fast_equals_reference(integration, block_cls, layout):
    """Every integration point (Fig. 5) in every block type, with a strided projection shortcut."""
    torch.manual_seed(1)
    se = SEConfig(reduction=4, integration=integration)
    cin, planes = 16, 8
    cout = planes * block_cls.expansion
    downsample = torch.nn.Conv2d(cin, cout, 1, 2, bias=False)
    block = block_cls(cin, planes, 2, downsample, se).train().to(memory_format=LAYOUTS[layout])
    for batch in (1, 2):
        x = torch.randn(batch, cin, 8, 8).contiguous(memory_format=LAYOUTS[layout])
        _fast_equals_reference(block, [x])


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("layout", ["nchw", "cl"])
def test_scale_add_op_gradients_match_autograd(relu, layout):
    """The fused Axpy(+ReLU) op's hand-written backward equals autograd's (float64 gradcheck too)."""
    from senet.layers import fast_ops

    torch.manual_seed(2)
    fmt = LAYOUTS[layout]
    x = torch.randn(3, 6, 4, 5, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    s = torch.rand(3, 6, 1, 1, dtype=torch.float64, requires_grad=True)
    sc = torch.randn(3, 6, 4, 5, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, c: fast_ops.scale_add(a, b, c, relu), (x, s, sc))
    assert torch.autograd.gradcheck(fast_ops.scale, (x, s))


@pytest.mark.parametrize("gate", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("mode", ["scale", "add", "add_relu"])
def test_squeeze_excite_function_passes_gradcheck(gate, mode):
    """The whole-block Function (squeeze, excitation, scale, sum, ReLU) against float64 gradcheck,
    for the input, the shortcut and all four FC parameters."""
    from senet.layers import fast_ops

    torch.manual_seed(6)
    se = SqueezeExcitation(6, 2, gate=gate).double()
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64, requires_grad=True)
    sc = torch.randn(2, 6, 3, 4, dtype=torch.float64, requires_grad=True)
    params = [se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias]

    def f(x, sc, w1, b1, w2, b2):
        for p, v in zip(params, (w1, b1, w2, b2), strict=True):
            p.data = v.detach()
        shortcut = None if mode == "scale" else sc
        return fast_ops._SqueezeExcite.apply(x, shortcut, w1, b1, w2, b2, se, mode == "add_relu")

    inputs = (x, sc, *(p.detach().clone().requires_grad_() for p in params))
    assert torch.autograd.gradcheck(f, inputs)


def test_scale_grad_chunking_matches_full_reduction(monkeypatch):
    """d/ds formed a few samples at a time (large maps) equals the one-shot reduction."""
    from senet.layers import fast_ops

    torch.manual_seed(3)
    g, x = torch.randn(5, 4, 3, 3), torch.randn(5, 4, 3, 3)
    s = torch.rand(5, 4, 1, 1)
    full = (g * x).sum_to_size(s.shape)
    monkeypatch.setattr(fast_ops, "_CHUNK_BYTES", 4 * 3 * 3 * 4 * 2)  # two samples per chunk
    torch.testing.assert_close(fast_ops._scale_grad(g, x, s), full)


def _bf16_no_worse_than_reference(block: torch.nn.Module, x: torch.Tensor) -> None:
    """bf16 (8 mantissa bits) is compared with float64 truth, not with the other bf16 path: a
    training-mode BN over a few values makes both bf16 paths err by up to ~40% of a gradient's
    scale, so "fast ≈ reference" is not a fixed tolerance. Stated tolerance: on the output and on
    every gradient, the fast path's bf16 error is at most 1.5× the reference path's bf16 error
    plus 1% of the tensor's scale."""
    exact = copy.deepcopy(block).double()
    y64, g64 = _run(exact, [x.double()], fast=False)
    low = copy.deepcopy(block).to(torch.bfloat16)
    yf, gf = _run(low, [x.to(torch.bfloat16)], fast=True)
    yr, gr = _run(low, [x.to(torch.bfloat16)], fast=False)
    for i, (f, r, t) in enumerate(zip([yf, *gf], [yr, *gr], [y64, *g64], strict=True)):
        err_fast = (f.double() - t).abs().max().item()
        err_ref = (r.double() - t).abs().max().item()
        bound = 1.5 * err_ref + 0.01 * t.abs().max().item()
        assert err_fast <= bound, f"tensor {i}: bf16 fast error {err_fast:.3g} > {bound:.3g}"


@pytest.mark.parametrize("se", [SEConfig(reduction=4), SEConfig(reduction=4, gate="tanh")])
def test_bfloat16_fast_path_within_stated_tolerance(se):
    torch.manual_seed(4)
    block = Bottleneck(32, 8, 1, None, se).train()
    _bf16_no_worse_than_reference(block, torch.randn(2, 32, 6, 6))
    torch.manual_seed(5)
    _bf16_no_worse_than_reference(SqueezeExcitation(16, 4).train(), torch.randn(3, 16, 5, 5))


def _network_paths(model: torch.nn.Module, x: torch.Tensor):
    """Outputs and parameter gradients of ``model`` on ``x`` on the fast and the reference path."""
    y = torch.arange(x.shape[0]) % 10

    def run(fast):
        model.zero_grad(set_to_none=True)
        with ops.fast_path() if fast else ops.reference_path():
            out = model(x)
            torch.nn.functional.cross_entropy(out, y).backward()
        return out.detach(), [p.grad for p in model.parameters()]

    return run(True), run(False)


def _assert_network_paths_agree(model: torch.nn.Module, x: torch.Tensor) -> None:
    """float64: the two paths compute the same function and gradients to 1e-9; float32: the same
    outputs within rounding. (float32 *gradients* of a deep ReLU network are compared on single
    blocks above: in a whole network a last-bit difference can flip one ReLU whose input is ~0,
    a discontinuity that moves upstream gradients by far more than rounding, whichever path
    rounds differently.)"""
    (yf, gf), (yr, gr) = _network_paths(model.double(), x.double())
    torch.testing.assert_close(yf, yr, rtol=1e-9, atol=1e-9)
    assert all(g is not None for g in gf), "every parameter must receive a gradient"
    for a, b in zip(gf, gr):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    (yf, _), (yr, _) = _network_paths(model.float(), x.float())
    torch.testing.assert_close(yf, yr, rtol=1e-4, atol=1e-4)


_slow = pytest.mark.slow


@pytest.mark.parametrize("layout", ["nchw", "cl"])
@pytest.mark.parametrize(
    "name,options",
    [
        ("cifar_se_resnet20", {}),
        pytest.param(
            "cifar_se_resnet20", {"integration": "identity", "squeeze": "max"}, marks=_slow
        ),
        pytest.param(
            "cifar_se_resnet20",
            {"integration": "post", "gate": "tanh", "se_bias": False},
            marks=_slow,
        ),
        pytest.param("cifar_se_resnet20", {"integration": "pre"}, marks=_slow),
        pytest.param("cifar_se_resnet20", {"integration": "3x3", "squeeze": "none"}, marks=_slow),
        pytest.param("cifar_se_resnet164", {}, marks=_slow),
    ],
)
def test_whole_network_fast_equals_reference(name, options, layout):
    torch.manual_seed(5)
    model = senet.create_model(name, **options).train().to(memory_format=LAYOUTS[layout])
    x = torch.randn(4, 3, 16, 16).contiguous(memory_format=LAYOUTS[layout])
    _assert_network_paths_agree(model, x)


@pytest.mark.parametrize("layout", ["nchw", "cl"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_pruned_or_hooked_fc_layers_run_as_modules(layout, training):
    """``torch.nn.utils.prune`` recomputes an FC weight in a forward pre-hook (weight_orig × mask),
    a forward hook wants the FC's output: the fast path calls such layers as modules, so outputs
    and gradients (weight_orig's among them) equal the reference path's, in two passes in a row,
    and the hook fires on both paths. (Reading the stale ``weight`` attribute instead gave other
    outputs, no gradient for weight_orig, and an error on the second backward.)"""
    from torch.nn.utils import prune

    torch.manual_seed(6)
    model = senet.create_model("cifar_se_resnet20").train(training)
    model = model.to(memory_format=LAYOUTS[layout])
    ses = [m for n, m in model.named_modules() if n.endswith(".se")]
    prune.l1_unstructured(ses[0].fc1, "weight", amount=0.5)
    prune.l1_unstructured(ses[1].fc2, "weight", amount=0.5)
    with torch.no_grad():  # the masked weights must come from the updated originals
        ses[0].fc1.weight_orig.mul_(3.0)
        ses[1].fc2.weight_orig.add_(0.5)
    seen = []
    ses[2].fc1.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    x = torch.randn(4, 3, 16, 16).contiguous(memory_format=LAYOUTS[layout])
    for _ in range(2):
        _fast_equals_reference(model, [x])
    assert len(seen) == 4  # once per forward, on both paths


def test_a_global_forward_hook_sees_every_fc_layer_on_the_fast_path():
    model = senet.create_model("cifar_se_resnet20").eval()
    seen: set[int] = set()
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda mod, args, out: seen.add(id(mod))
    )
    try:
        with ops.fast_path(), torch.no_grad():
            model(torch.randn(2, 3, 16, 16))
    finally:
        hook.remove()
    fcs = [m for n, m in model.named_modules() if n.endswith((".fc1", ".fc2"))]
    assert len(fcs) == 18 and all(id(m) in seen for m in fcs)


@pytest.mark.slow
def test_imagenet_bottleneck_network_fast_equals_reference_channels_last():
    torch.manual_seed(6)
    model = (
        senet.create_model("se_resnet50", num_classes=10)
        .train()
        .to(memory_format=torch.channels_last)
    )
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    _assert_network_paths_agree(model, x)


@pytest.mark.parametrize("layout", ["nchw", "cl"])
def test_training_loss_curve_follows_reference(layout):
    """Six SGD steps from one seed: the fast path's loss curve is the reference path's."""

    def curve(fast: bool) -> list[float]:
        torch.manual_seed(7)
        model = senet.create_model("cifar_se_resnet20").train().to(memory_format=LAYOUTS[layout])
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        g = torch.Generator().manual_seed(8)
        x = torch.randn(8, 3, 16, 16, generator=g).contiguous(memory_format=LAYOUTS[layout])
        y = torch.randint(0, 10, (8,), generator=g)
        losses = []
        with ops.fast_path() if fast else ops.reference_path():
            for _ in range(6):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                losses.append(loss.item())
        return losses

    fast, ref = curve(True), curve(False)
    assert fast[-1] < fast[0], "the loss must go down on a fixed batch"
    torch.testing.assert_close(torch.tensor(fast), torch.tensor(ref), rtol=1e-3, atol=1e-4)


def test_inference_scale_add_relu_is_within_one_rounding_of_the_reference():
    """Without autograd the fused op is one ``addcmul`` (fused multiply-add) and an in-place ReLU."""
    torch.manual_seed(9)
    x, sc = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    s = torch.rand(2, 8, 1, 1)
    with torch.no_grad():
        with ops.fast_path():
            fast = ops.scale_add_relu(x, s, sc)
        with ops.reference_path():
            ref = ops.scale_add_relu(x, s, sc)
    torch.testing.assert_close(fast, ref, rtol=2**-22, atol=2**-22 * 8)
    assert (fast >= 0).all() and (fast > 0).any()


def test_switch_and_context_managers_restore_the_setting():
    before = ops.fast_path_enabled()
    try:
        ops.set_fast_path(True)
        with ops.reference_path():
            assert not ops.fast_path_enabled()
            with ops.fast_path():
                assert ops.fast_path_enabled()
            assert not ops.fast_path_enabled()
        assert ops.fast_path_enabled()
        with pytest.raises(RuntimeError), ops.reference_path():
            raise RuntimeError("boom")
        assert ops.fast_path_enabled(), (
            "an exception inside reference_path() must restore the fast path"
        )
    finally:
        ops.set_fast_path(before)


@pytest.mark.parametrize("value,expected", [("0", False), ("1", True), ("off", False), ("", True)])
def test_environment_variable_selects_the_path(monkeypatch, value, expected):
    monkeypatch.setenv("SENET_FAST_PATH", value)
    assert ops._env_default() is expected


def test_environment_variable_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("SENET_FAST_PATH", "maybe")
    with pytest.raises(ValueError, match="SENET_FAST_PATH"):
        ops._env_default()


@pytest.mark.slow
def test_environment_variable_is_read_at_import():
    env = {**os.environ, "SENET_FAST_PATH": "0"}
    code = "from senet.layers import ops; print(ops.fast_path_enabled())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_the_fast_path_is_really_taken():
    """The fused autograd Function is in the graph on the fast path and absent on the reference."""
    block = Bottleneck(16, 4, 1, None, SEConfig(reduction=4)).train()
    x = torch.randn(1, 16, 4, 4, requires_grad=True)
    with ops.fast_path():
        assert "_SqueezeExcite" in type(block(x).grad_fn).__name__
        max_block = Bottleneck(16, 4, 1, None, SEConfig(reduction=4, squeeze="max")).train()
        assert "_ScaleAdd" in type(max_block(x).grad_fn).__name__  # max squeeze: Axpy only
    with ops.reference_path():
        name = type(block(x).grad_fn).__name__
        assert "_SqueezeExcite" not in name and "_ScaleAdd" not in name


@pytest.mark.parametrize(
    "name",
    [
        "cifar_se_resnet20",
        pytest.param("se_resnet50", marks=pytest.mark.slow),
        pytest.param("cifar_se_resnet164", marks=pytest.mark.slow),
    ],
)
def test_fold_batchnorm_keeps_outputs_and_removes_bns(name):
    torch.manual_seed(10)
    size = 16 if name.startswith("cifar") else 64
    model = randomize_bn(senet.create_model(name, num_classes=10))
    model.double()  # float64: folding is exact up to rounding, whatever the depth
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    fused = fold_batchnorm(model, example=x[:1])
    n_before = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    n_after = sum(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert n_before > 0 and n_after < n_before
    if name == "se_resnet50":
        assert n_after == 0  # every BN of a post-activation ResNet follows a convolution
    with torch.no_grad():  # float64 logits of a 164-layer net: rounding reaches ~5e-8
        torch.testing.assert_close(fused(x), model(x), rtol=1e-8, atol=1e-7)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()), (
        "the original is untouched"
    )


def _bottlenecks(se: SEConfig | None, stride_in: str = "1x1") -> torch.nn.Sequential:
    down = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 1, 2, bias=False), torch.nn.BatchNorm2d(32))
    return torch.nn.Sequential(
        Bottleneck(16, 8, 2, down, se, stride_in=stride_in),
        Bottleneck(32, 8, 1, None, se, stride_in=stride_in),
    )


def _gates(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every excitation s recorded by ``gate_out`` hooks during one forward."""
    seen: list[torch.Tensor] = []
    hooks = [
        m.gate_out.register_forward_hook(lambda _m, _i, out: seen.append(out.flatten(1)))
        for m in model.modules()
        if isinstance(m, senet.SqueezeExcitation)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("layout", ["nchw", "cl"])
@pytest.mark.parametrize("stride_in", ["1x1", "3x3"])
def test_early_squeeze_is_exact_and_keeps_the_gate_hooks(layout, stride_in):
    """Squeezing conv3's input (W·mean(h) + b) gives the same z, s and outputs as the SE block."""
    torch.manual_seed(12)
    fmt = LAYOUTS[layout]
    model = randomize_bn(_bottlenecks(SEConfig(reduction=4), stride_in)).double()
    model = model.to(memory_format=fmt)
    x = torch.randn(3, 16, 10, 10, dtype=torch.float64).contiguous(memory_format=fmt)
    fast = optimize_for_inference(model, example=x[:1])
    assert [getattr(b, "early_squeeze", False) for b in fast] == [True, True]
    assert not any(getattr(b, "early_squeeze", False) for b in model), "original untouched"
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-9, atol=1e-9)
    for a, b in zip(_gates(fast, x), _gates(model, x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    with pytest.raises(RuntimeError, match="train the original model"):
        fast.train()(x)


def test_early_squeeze_runs_only_where_it_reads_less(monkeypatch):
    """Per call, a rewritten block squeezes early only if conv3's input and weight are smaller
    than its output (N·HW·C_in + C_out·C_in < N·HW·C_out): not at batch 1 on tiny maps."""
    torch.manual_seed(13)
    model = randomize_bn(_bottlenecks(SEConfig(reduction=4))).double()
    fast = optimize_for_inference(model, example=torch.randn(1, 16, 10, 10, dtype=torch.float64))
    calls = []
    original = Bottleneck._forward_early_squeeze

    def spy(self, h, shortcut):
        calls.append(tuple(h.shape))
        return original(self, h, shortcut)

    monkeypatch.setattr(Bottleneck, "_forward_early_squeeze", spy)
    for shape, early in [((3, 16, 10, 10), 2), ((1, 16, 2, 2), 0)]:
        calls.clear()
        x = torch.randn(*shape, dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(fast(x), model(x), rtol=1e-9, atol=1e-9)
        assert len(calls) == early, (shape, calls)


@pytest.mark.parametrize(
    "se",
    [SEConfig(reduction=4, squeeze="max"), SEConfig(reduction=4, integration="3x3"), None],
    ids=["max-squeeze", "se-3x3", "plain"],
)
def test_early_squeeze_leaves_ineligible_blocks_alone(se):
    """Only an average squeeze right after a folded 1×1 conv3 commutes with it."""
    torch.manual_seed(13)
    model = randomize_bn(_bottlenecks(se)).double()
    x = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    fast = optimize_for_inference(model, example=x[:1])
    assert not any(getattr(b, "early_squeeze", False) for b in fast)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-9, atol=1e-9)
    assert squeeze_early(randomize_bn(_bottlenecks(SEConfig(reduction=4)))) == 0, (
        "BN not folded: conv3 alone is not what the SE block sees"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["se_resnet50", "se_resnext50_32x4d", "senet154"])
def test_optimize_for_inference_whole_networks(name):
    torch.manual_seed(14)
    model = randomize_bn(senet.create_model(name, num_classes=10)).double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    fast = optimize_for_inference(model, example=x[:1])
    blocks = [b for b in fast.modules() if isinstance(b, Bottleneck)]
    assert blocks and all(b.early_squeeze for b in blocks)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-8, atol=1e-7)


@pytest.mark.parametrize(
    "name, options",
    [
        ("cifar_se_resnet20", {}),
        ("cifar_se_resnet20", {"squeeze": "max"}),
        ("cifar_se_resnet20", {"squeeze": "none"}),
        ("cifar_se_wrn16_8", {}),  # pre-activation: BNs that no convolution precedes stay
    ],
    ids=["avg", "max", "nosqueeze", "preact"],
)
def test_bf16_weights_compute_what_autocast_computes(name, options):
    """``optimize_for_inference(dtype=bf16)`` stores the weights autocast would cast on every
    call; on the fast path its logits equal autocast's over the folded model bit for bit (with
    the oneDNN-packed convolutions: within bf16 rounding, another summation order)."""
    torch.manual_seed(15)
    model = randomize_bn(senet.create_model(name, **options)).eval()
    x = torch.randn(3, 3, 32, 32)
    folded = fold_batchnorm(model, example=x[:1])
    fast = optimize_for_inference(model, example=x[:1], dtype=torch.bfloat16, prepack=False)
    packed = optimize_for_inference(model, example=x[:1], dtype=torch.bfloat16)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            expected = folded(x).float()
        got = fast(x)  # float32 in, float32 out
        got_packed = packed(x)
    assert got.dtype == got_packed.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(got_packed, expected, rtol=0.05, atol=0.02)
    se_fcs = {
        id(fc)
        for b in fast.modules()
        if isinstance(b, SqueezeExcitation) and b.squeeze != "none"
        for fc in (b.fc1, b.fc2)
    }
    for m in fast.modules():
        dtypes = {
            t.dtype for t in [*m.parameters(False), *m.buffers(False)] if t.is_floating_point()
        }
        if isinstance(m, torch.nn.BatchNorm2d):
            assert dtypes == {torch.float32}, "BN statistics stay float32"
        elif isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            assert dtypes == ({torch.float32} if id(m) in se_fcs else {torch.bfloat16}), m
    se_weights = {b.fc1.weight.dtype for b in fast.modules() if isinstance(b, SqueezeExcitation)}
    assert se_weights == {torch.float32 if options.get("squeeze") != "none" else torch.bfloat16}
    with ops.reference_path(), torch.no_grad():  # float32 FCs on a bf16 map: cast on the way
        torch.testing.assert_close(fast(x), expected, rtol=0.05, atol=0.05)
    n_se = sum(isinstance(m, SqueezeExcitation) for m in model.modules())
    assert len(_gates(fast, x)) == n_se > 0, "gate_out hooks still see every excitation"


def test_cast_for_inference_refuses_other_dtypes():
    model = senet.create_model("cifar_se_resnet20").eval()
    with pytest.raises(ValueError, match=r"dtype=torch\.float64 is not supported; choose"):
        cast_for_inference(model, torch.float64)


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (CPU paths are tested above)"
)
@pytest.mark.parametrize("layout", ["nchw", "cl"])
def test_cuda_fast_equals_reference(layout):
    """On GPU the fast path runs PyTorch's CUDA kernels: float32 equality, bf16 as on CPU."""
    torch.manual_seed(11)
    fmt = LAYOUTS[layout]
    block = Bottleneck(32, 8, 1, None, SEConfig(reduction=4)).train().cuda().to(memory_format=fmt)
    x = torch.randn(3, 32, 6, 6, device="cuda").contiguous(memory_format=fmt)
    _fast_equals_reference(block, [x], rtol=1e-4, grad_rtol=1e-3, atol=1e-4)
    _bf16_no_worse_than_reference(block, x)  # bf16 weights and input, against float64 truth


@pytest.mark.parametrize(
    "name", ["cifar_se_resnet20", "cifar_se_resnet164", "se_resnet50", "se_vgg16_bn"]
)
def test_autocast_training_step_runs_on_the_fast_path(name):
    """Autocast around the forward, backward outside it (the usual loop): the fused Function
    recomputes its excitation under the forward's autocast state, so fp32 FC weights meet a
    bf16 descriptor without a dtype error, and every parameter gets a finite gradient."""
    torch.manual_seed(15)
    model = senet.create_model(name, num_classes=10).train()
    size = 32 if name.startswith("cifar") else 64
    with ops.fast_path(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 3, size, size))
    out.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_cpu_bf16_autocast_fast_path_is_as_accurate_as_the_reference():
    """Mixed precision (CPU autocast, bf16): against a float32 run, the fast path's error is of the
    reference path's size (bf16 rounding lands in different places, so the two are not compared
    with each other element by element)."""
    torch.manual_seed(12)
    block = Bottleneck(32, 8, 1, None, SEConfig(reduction=4)).train()
    x = torch.randn(2, 32, 6, 6)
    y32, g32 = _run(block, [x], fast=False)
    # autocast around the forward only, as in a training loop: backward runs outside it
    yf, gf = _run(block, [x], fast=True, autocast=torch.bfloat16)
    yr, gr = _run(block, [x], fast=False, autocast=torch.bfloat16)

    def err(y, gs):
        out = ((y.float() - y32).abs().max() / y32.abs().max()).item()
        grads = max(((a.float() - b).abs().max() / b.abs().max()).item() for a, b in zip(gs, g32))
        return out, grads

    (out_f, grad_f), (out_r, grad_r) = err(yf, gf), err(yr, gr)
    assert out_f <= 2 * out_r + 1e-2 and out_f < 0.05
    assert grad_f <= 1.5 * grad_r + 1e-2, (
        grad_f,
        grad_r,
    )  # bf16 grads of tiny SE tensors are coarse on both
