"""The native SE kernels (senet.layers.native): values, gradients, where they are used, fallbacks.

The kernel tests need the kernels built (a C++ compiler and ninja, Linux x86-64); where they
cannot be built they skip with the reason, and the fallback tests below still run.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from _helpers import run_senet, tiny_train_args
from senet.layers import fast_ops, native, ops
from senet.layers.se import SEConfig, SqueezeExcitation
from senet.models.blocks import BasicBlock

CL = torch.channels_last
TOL = {torch.float32: 2e-6, torch.bfloat16: 8e-3}  # × the reference's largest magnitude


def _map(shape, dtype, fmt, seed):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(shape, generator=g, dtype=torch.float64).to(dtype).contiguous(memory_format=fmt)
    )


def _close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    scale = expected.abs().max().item() or 1.0
    err = (actual.double() - expected).abs().max().item()
    assert err <= TOL[dtype] * scale, f"error {err:.3g} > {TOL[dtype]} × {scale:.3g}"


# C = 1 and HW = 1 (both layouts are the same memory), periods that do not divide the 64-element
# tile (3, 7, 100), a segment shorter than a tile, many channels, a map with several 16 K blocks;
# batch 1 (reductions split along HW): a partial 64-channel block (100), runs with a tail (24)
SHAPES = [
    (2, 16, 8, 8),
    (1, 100, 9, 11),
    (1, 24, 30, 31),
    (3, 7, 5, 3),
    (2, 3, 11, 13),
    (1, 1, 9, 9),
    (4, 100, 1, 1),
    (1, 2048, 7, 7),
    (2, 24, 40, 40),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("fmt", [CL, torch.contiguous_format], ids=["cl", "nchw"])
@pytest.mark.parametrize("shape", SHAPES)
def test_each_kernel_equals_its_formula(kernels, dtype, fmt, shape):
    x, g, sc = (_map(shape, dtype, fmt, i) for i in range(3))
    n, c = shape[:2]
    s = torch.rand(n, c, dtype=torch.float64).to(dtype)
    d = torch.randn(n, c)
    xd, gd, scd, sd = x.double(), g.double(), sc.double(), s.double().view(n, c, 1, 1)
    for relu in (False, True):
        for shortcut in (None, sc):
            out = native.scale(x, s, shortcut, relu)
            want = xd * sd + (0 if shortcut is None else scd)
            assert out.dtype == dtype and out.stride() == x.stride(), "no layout conversion"
            _close(out, want.clamp_min(0) if relu else want, dtype)
    out = native.scale(x, s, sc, True)
    masked, gs = native.relu_grad_sum(g, out, x)
    keep = (out > 0).double()
    assert masked.stride() == x.stride() and gs.dtype == torch.float32 and gs.shape == (n, c)
    assert torch.equal(masked, torch.where(out > 0, g, torch.zeros_like(g))), "the mask is exact"
    _close(gs, (gd * keep * xd).sum((2, 3)), dtype)
    _close(native.product_sum(g, x), (gd * xd).sum((2, 3)), dtype)
    # the squeeze: float32 sums rounded once to the map's dtype, then the mean
    want = xd.sum((2, 3)).to(dtype).double() / (shape[2] * shape[3])
    _close(native.squeeze(x), want, dtype)
    _close(native.affine(g, s, d), gd * sd + d.double().view(n, c, 1, 1), dtype)


def test_kernels_refuse_mismatched_maps(kernels):
    x = _map((2, 4, 3, 3), torch.float32, CL, 0)
    s = torch.rand(2, 4)
    with pytest.raises(RuntimeError, match="shortcut must have the map's shape, strides and dtype"):
        native.scale(x, s, x.contiguous(), False)
    with pytest.raises(RuntimeError, match="float32 or bfloat16 maps only"):
        native.scale(x.double(), s, None, False)
    with pytest.raises(RuntimeError, match="contiguous"):
        native.product_sum(x[:, :, :2], x[:, :, :2])


def _spy(monkeypatch, *names):
    """Record the calls of the named ``senet.layers.native`` functions (still calling them)."""
    calls = []
    for name in names:
        real = getattr(native, name)
        monkeypatch.setattr(native, name, lambda *a, _f=real, _n=name: calls.append(_n) or _f(*a))
    return calls


def _block_run(se, x0, sc0, gy, relu, amp):
    x, sc = x0.clone().requires_grad_(), None if sc0 is None else sc0.clone().requires_grad_()
    se.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        y = fast_ops.squeeze_excite(se, x, sc, relu)
    y.backward(gy)
    grads = [x.grad] + ([] if sc is None else [sc.grad])
    return [y, *grads] + [p.grad for p in se.parameters()]


@pytest.mark.parametrize("fmt", [CL, torch.contiguous_format], ids=["cl", "nchw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    ("relu", "shortcut", "gate", "bias"),
    [(True, True, "sigmoid", True), (False, True, "tanh", False), (False, False, "relu", True)],
)
def test_whole_block_node_equals_python_function_and_aten(
    kernels, monkeypatch, dtype, relu, shortcut, gate, bias, fmt
):
    """The C++ autograd node, the Python Function on the same kernels, and the ATen path: the
    same output and every gradient (float32 within 1e-5 and 1e-6 between the two native forms;
    bf16 under autocast within 2e-2), same dtypes and layouts."""
    monkeypatch.setattr(native, "_SMALL", 1)  # small maps too
    torch.manual_seed(0)
    se = SqueezeExcitation(24, 4, gate=gate, bias=bias)
    x0, sc0, gy = (_map((3, 24, 12, 10), dtype, fmt, i) for i in range(3))
    sc0 = sc0 if shortcut else None
    amp = dtype == torch.bfloat16
    calls = _spy(monkeypatch, "squeeze_excite", "scale", "relu_grad_sum", "product_sum", "affine")
    node = _block_run(se, x0, sc0, gy, relu, amp)
    assert calls == ["squeeze_excite"], "the whole block is one C++ call"
    calls.clear()
    monkeypatch.setattr(fast_ops, "_native_block", lambda *args: False)
    function = _block_run(se, x0, sc0, gy, relu, amp)
    assert calls == ["scale", "relu_grad_sum" if relu else "product_sum", "affine"]
    monkeypatch.setattr(native, "applies", lambda *maps: False)
    aten = _block_run(se, x0, sc0, gy, relu, amp)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for a, b, c in zip(node, function, aten, strict=True):
        assert a.dtype == b.dtype == c.dtype and a.stride() == b.stride() == c.stride()
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * b.abs().max().item())
        torch.testing.assert_close(a.float(), c.float(), rtol=tol, atol=tol * c.abs().max().item())


@pytest.mark.parametrize("fmt", [CL, torch.contiguous_format], ids=["cl", "nchw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n", [1, 2, 12])
def test_node_at_each_batch_size_equals_aten(kernels, monkeypatch, dtype, n, fmt):
    """Batch 1 (squeeze split along HW over the threads, FCs as the node's own matrix-vector
    loop), 2 (one thread per image, own loop) and 12 (BLAS), in both layouts: output and every
    gradient equal the ATen path's, in training and in inference mode."""
    monkeypatch.setattr(native, "_SMALL", 1)
    torch.manual_seed(n)
    se = SqueezeExcitation(96, 8)
    x0, sc0, gy = (_map((n, 96, 9, 7), dtype, fmt, i) for i in range(3))
    amp = dtype == torch.bfloat16
    calls = _spy(monkeypatch, "squeeze_excite")
    node = _block_run(se, x0, sc0, gy, True, amp)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        node_inference = fast_ops.squeeze_excite(se, x0, sc0, True)
    assert calls == ["squeeze_excite"] * 2
    monkeypatch.setattr(native, "applies", lambda *maps: False)
    aten = _block_run(se, x0, sc0, gy, True, amp)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(node_inference, node[0], rtol=0, atol=0)
    for a, c in zip(node, aten, strict=True):
        assert a.dtype == c.dtype and a.stride() == c.stride()
        torch.testing.assert_close(a.float(), c.float(), rtol=tol, atol=tol * c.abs().max().item())


def test_hooks_and_custom_excite_keep_the_python_function(kernels, monkeypatch):
    """A hook on ``gate_out`` must see ``s``, and a subclass's ``excite`` must run: both take
    the Python Function (which calls ``excite``), not the C++ node."""
    monkeypatch.setattr(native, "_SMALL", 1)
    x = _map((2, 16, 8, 8), torch.float32, CL, 0).float().requires_grad_()
    calls = _spy(monkeypatch, "squeeze_excite")
    se = SqueezeExcitation(16, 4)
    seen = []
    handle = se.gate_out.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    fast_ops.squeeze_excite(se, x, None, True).sum().backward()
    assert seen == [(2, 16, 1, 1)] and calls == []
    handle.remove()

    class Halved(SqueezeExcitation):
        def excite(self, z):
            return super().excite(z) * 0.5

    halved = Halved(16, 4)
    halved.load_state_dict(se.state_dict())
    y = fast_ops.squeeze_excite(halved, x, None, False)
    assert calls == []
    torch.testing.assert_close(y, x * se.excitation(x) * 0.5)
    fast_ops.squeeze_excite(se, x, None, True).sum().backward()
    assert calls == ["squeeze_excite"], "without hooks, the node"


def test_dispatch_modes_see_the_ops_not_the_node(kernels, monkeypatch):
    """Under a dispatch mode (flop counters, fake tensors, op recorders) the block's own ops
    run, as on the ATen path: the node, one opaque op, runs only where nobody looks inside."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    monkeypatch.setattr(native, "_SMALL", 1)
    se = SqueezeExcitation(16, 4)
    x = _map((2, 16, 8, 8), torch.float32, CL, 0).float()
    calls = _spy(monkeypatch, "squeeze_excite")
    with torch.no_grad(), Recorder() as seen:
        fast_ops.squeeze_excite(se, x, None, True)
    assert calls == [] and not any("senet_native" in op for op in seen.ops)
    assert any("addmm" in op for op in seen.ops), "the FCs are visible"
    with torch.no_grad():
        fast_ops.squeeze_excite(se, x, None, True)
    assert calls == ["squeeze_excite"], "unobserved: the node"


class _Counting:
    """Stands in for the library's module: counts calls of its direct entries."""

    def __init__(self, module):
        self.module, self.calls = module, []

    def __getattr__(self, name):
        def call(*args):
            self.calls.append(name)
            return getattr(self.module, name)(*args)

        return call


@pytest.mark.parametrize("op", ["squeeze_excite", "bn_squeeze_excite"])
def test_direct_entries_equal_torch_ops(kernels, monkeypatch, op):
    """The library's direct Python entries (one dispatcher call, without torch.ops' argument
    matching) give bit for bit torch.ops' output, every gradient and BatchNorm statistic, in
    training and in inference mode."""
    assert native._direct is not None, "the library was loaded as a module"
    monkeypatch.setattr(native, "_SMALL", 1)

    def run(direct):
        monkeypatch.setattr(native, "_direct", direct)
        torch.manual_seed(0)
        se, bn = SqueezeExcitation(24, 4), torch.nn.BatchNorm2d(24)
        y, sc = (_map((2, 24, 9, 7), torch.float32, CL, i).requires_grad_() for i in range(2))
        weights = fast_ops._fc_weights(se)
        if op == "squeeze_excite":
            out = native.squeeze_excite(y, sc, weights, "sigmoid", True)
        else:
            out = native.bn_squeeze_excite(y, sc, bn, weights, "sigmoid", True)
        out.square().sum().backward()
        with torch.inference_mode():
            bn.eval()
            inference = native.bn_squeeze_excite(y, sc, bn, weights, "sigmoid", True)
        grads = [y.grad, sc.grad, *(p.grad for p in se.parameters() if p.grad is not None)]
        grads += [p.grad for p in bn.parameters() if p.grad is not None]
        return [out, inference, *grads, bn.running_mean, bn.running_var]

    counting = _Counting(native._direct)
    direct = run(counting)
    assert counting.calls == [op, "bn_squeeze_excite"]
    via_torch_ops = run(None)
    assert len(direct) == len(via_torch_ops) >= 6
    for a, b in zip(direct, via_torch_ops, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_function_modes_and_subclasses_see_the_op(kernels, monkeypatch):
    """Where a TorchFunctionMode is active or a map is a tensor subclass, the op goes through
    torch.ops, which hands it to ``__torch_function__`` (the direct entry would bypass it)."""
    from torch.overrides import TorchFunctionMode

    class Recorder(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.seen.append(str(func))
            return func(*args, **(kwargs or {}))

    class Tagged(torch.Tensor):
        pass

    counting = _Counting(native._direct)
    monkeypatch.setattr(native, "_direct", counting)
    se = SqueezeExcitation(16, 4)
    x = _map((2, 16, 8, 8), torch.float32, CL, 0).float()
    weights = fast_ops._fc_weights(se)
    with torch.no_grad(), Recorder() as recorder:
        native.squeeze_excite(x, None, weights, "sigmoid", True)
    assert "senet_native.squeeze_excite" in recorder.seen and counting.calls == []
    with torch.no_grad():
        tagged = native.squeeze_excite(x.as_subclass(Tagged), None, weights, "sigmoid", True)
        plain = native.squeeze_excite(x, None, weights, "sigmoid", True)
    assert type(tagged) is Tagged and counting.calls == ["squeeze_excite"]
    torch.testing.assert_close(tagged.as_subclass(torch.Tensor), plain, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::FutureWarning")
def test_traced_graphs_do_not_depend_on_the_library(kernels):
    """TorchScript tracing of a channels-last model records ATen ops only."""
    import senet

    model = senet.create_model("cifar_se_resnet20").eval().to(memory_format=CL)
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=CL)
    with torch.no_grad():
        traced = torch.jit.trace(model, (x,), check_trace=False)
        torch.testing.assert_close(traced(x), model(x), rtol=1e-4, atol=1e-5)
    assert "senet_native" not in str(traced.inlined_graph)


@pytest.mark.parametrize("fmt", [CL, torch.contiguous_format], ids=["cl", "nchw"])
def test_network_training_step_uses_the_node_in_both_layouts(kernels, monkeypatch, fmt):
    """A CIFAR SE-ResNet step: every block runs as the C++ node with its last BatchNorm inside,
    on channels-last and on NCHW maps, and the loss, every gradient and the BatchNorms' running
    statistics equal the ATen path's (same layout) within float32."""
    import senet

    used = _spy(monkeypatch, "bn_squeeze_excite", "squeeze_excite")

    def step():
        torch.manual_seed(0)
        model = senet.create_model("cifar_se_resnet20").to(memory_format=fmt)
        x = torch.randn(16, 3, 32, 32).contiguous(memory_format=fmt)
        loss = model(x).logsumexp(1).mean()
        loss.backward()
        stats = [b for name, b in model.named_buffers() if "running" in name]
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()]), stats

    loss, grads, stats = step()
    assert used == ["bn_squeeze_excite"] * 9, "every block of the network"
    monkeypatch.setattr(native, "applies", lambda *maps: False)
    loss_aten, grads_aten, stats_aten = step()
    assert abs(loss - loss_aten) < 1e-6
    torch.testing.assert_close(grads, grads_aten, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(stats, stats_aten, rtol=1e-5, atol=1e-6)


def test_inference_forward_uses_the_node(kernels, monkeypatch):
    torch.manual_seed(0)
    block = BasicBlock(16, 16, 1, None, SEConfig(reduction=4)).eval()
    x = _map((2, 16, 32, 32), torch.float32, CL, 0).float()
    with torch.no_grad(), ops.reference_path():
        want = block(x)
    used = _spy(monkeypatch, "bn_squeeze_excite", "squeeze_excite")
    with torch.no_grad():
        got = block(x)
    with torch.inference_mode():
        got_inference = block(x)
    assert used == ["bn_squeeze_excite"] * 2, "no-grad and inference mode take the C++ node too"
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_inference, want, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Fallbacks: these run everywhere, kernels or not.
# --------------------------------------------------------------------------------------------
@pytest.fixture
def fresh_state(monkeypatch):
    """A fresh 'not yet tried' state, restored afterwards."""
    saved = dict(native._state)
    native.reset()
    yield
    native._state.clear()
    native._state.update(saved)


def test_mode_is_read_from_the_environment(monkeypatch):
    for value, want in [
        ("", "auto"),
        ("auto", "auto"),
        ("1", "1"),
        ("on", "1"),
        ("0", "0"),
        ("off", "0"),
    ]:
        monkeypatch.setenv("SENET_NATIVE", value)
        assert native.mode() == want
    monkeypatch.setenv("SENET_NATIVE", "fast")
    with pytest.raises(
        ValueError, match=r"SENET_NATIVE='fast' is not understood; set it to auto, 1"
    ):
        native.mode()


def test_off_means_never_tried(monkeypatch, fresh_state):
    monkeypatch.setenv("SENET_NATIVE", "0")
    monkeypatch.setattr(native, "_build_and_load", lambda: pytest.fail("must not build"))
    x = _map((2, 16, 32, 32), torch.float32, CL, 0).float()
    assert not native.applies(x)
    assert native.status() == "off (SENET_NATIVE=0)"
    assert native.describe_for("cpu") == "; native SE kernels off (SENET_NATIVE=0)"
    assert native.describe_for("meta") == ""


def test_a_failed_build_warns_once_and_falls_back(monkeypatch, fresh_state):
    monkeypatch.setenv("SENET_NATIVE", "auto")
    monkeypatch.setattr(native, "_unsupported_platform", lambda: "")
    tries = []

    def fail():
        tries.append(1)
        raise RuntimeError("Error building extension\nc++: command not found")

    monkeypatch.setattr(native, "_build_and_load", fail)
    x = _map((2, 16, 32, 32), torch.float32, CL, 0).float()
    with pytest.warns(
        RuntimeWarning,
        match=r"native SE kernels unavailable \(RuntimeError: c\+\+: command not found\)",
    ):
        assert not native.applies(x)
    assert not native.applies(x) and tries == [1], "tried once per process"
    se = SqueezeExcitation(16, 4)
    y = fast_ops.squeeze_excite(se, x, x, True)  # the ATen path, same numbers
    with ops.reference_path():
        want = se(x) * 0 + torch.relu(x * se.excitation(x) + x)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)


def test_other_platforms_are_off_without_a_warning(monkeypatch, fresh_state, recwarn):
    monkeypatch.setenv("SENET_NATIVE", "auto")
    monkeypatch.setattr(
        native, "_unsupported_platform", lambda: "built only on Linux x86-64 (this is darwin arm64)"
    )
    monkeypatch.setattr(native, "_build_and_load", lambda: pytest.fail("must not build"))
    assert not native.available()
    assert native.status() == "off (built only on Linux x86-64 (this is darwin arm64))"
    assert not [w for w in recwarn if "native SE kernels" in str(w.message)]


def test_required_but_unavailable_is_an_error(monkeypatch, fresh_state):
    monkeypatch.setenv("SENET_NATIVE", "1")
    monkeypatch.setattr(
        native, "_unsupported_platform", lambda: "built only on Linux x86-64 (this is darwin arm64)"
    )
    with pytest.raises(
        RuntimeError, match=r"SENET_NATIVE=1 but .* Linux x86-64 .*pip install 'senet\[native\]'"
    ):
        native.available()


def test_build_name_follows_the_cpu(monkeypatch):
    from senet.utils import cpu

    here = native.build_name()
    other = cpu.CpuInfo("Some Other CPU", "AVX2", frozenset({"avx2"}), "test")
    monkeypatch.setattr(cpu, "cpu_info", lambda: other)
    assert native.build_name() != here, "a build for one CPU is never loaded on another"


def test_the_train_command_names_the_kernels_in_its_settings_line(tiny_imagefolder, tmp_path):
    """Through the real entry point: the precision line (printed and kept in summary.json) says
    whether the kernels are on, for a channels-last CPU run."""
    out = tmp_path / "run"
    args = tiny_train_args(tiny_imagefolder, out, "--channels-last", epochs=1)
    done = run_senet(
        "train", *[("cifar_se_resnet20" if a == "cifar_resnet20" else a) for a in args]
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    match = re.search(r"native SE kernels (on|off \(.+\))", summary["precision"])
    assert match, summary["precision"]
    assert match.group(0) in done.stderr + done.stdout
