"""Fast kernels for the SE block's element-wise ops (CPU first; any device works).

An SE block costs its run time not in arithmetic but in passes over the feature map, and on CPU
in which ATen kernel a pass lands on: the same ``x · s + shortcut`` runs 2–10× slower on some
dtype/layout combinations than on others (measured, docs/performance.md). The fast path keeps
every pass on a fast kernel and does the rest on the tiny N×C tensors:

- The **squeeze** is a ``sum`` over H×W in the map's own dtype (ATen accumulates bf16 in float32;
  bf16 ``mean`` converts the whole map to float32 first, 3× slower), divided by H·W afterwards.
- The **excitation** (Eq. 3) runs in float32 (float64 for float64 models) on the N×C descriptor,
  with autocast off: no per-call casts of the FC weights, no slow bf16 matrix products of one row,
  and a more accurate gate. The gate is rounded to the map's dtype once, to scale the map.
- The **scale** ``x · s (+ shortcut)`` is one ``addcmul``/``mul``. In channels_last with few
  channels, the N×C×1×1 gate is tiled over a few pixels (a tiny tensor) so that the kernel's
  inner loop covers ``tile × C ≥ 256`` contiguous elements instead of ``C``.
- In the **backward**, ``d/ds = Σ_hw g·x`` and ``d/dx = g·s + dz/HW`` are one pass each. On
  NCHW CPU maps they run as batch-norm kernels over an (N·C)-channel view: the BN backward's
  per-channel ``Σ g·x̂`` with mean 0 and inverse std 1 is exactly ``d/ds`` (float32 accumulation,
  no product map), and the BN inference kernel with weight ``s`` and bias ``dz/HW`` is exactly
  ``d/dx``. Channels-last maps with large samples get ``d/ds`` from the same BN backward kernel
  one sample at a time. Elsewhere: ``(g·x).sum`` in chunks, and the tiled ``addcmul``.
- The excitation's backward is written out (five small matrix products on N×C tensors, the
  hidden layer recomputed from the saved descriptor) instead of re-running it under autograd.

``_SqueezeExcite`` is the whole average-squeeze SE block with the residual sum and ReLU
(``relu?(x · s(x) + shortcut?)``) as one autograd Function; ``scale``/``scale_add`` serve max
squeeze and NoSqueeze. On CPU maps, where the optional native kernels are built
(``senet.layers.native``), the block runs as their C++ autograd node instead (the same
arithmetic), and the Function uses their fused passes where hooks keep it in Python. Under
``torch.compile`` and FX tracing the reference ops are used instead (``senet.layers.ops``
decides): Inductor fuses plain element-wise code itself, and a traced graph should show the real
ops.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch.nn.modules import module as nn_module

from senet.layers import native
from senet.layers.gates import apply_gate

# Products for d/ds (where no BN kernel applies) are formed at most this many bytes at a time:
# well below glibc's largest mmap threshold (32 MiB, above which every allocation is page-faulted
# afresh), and small enough to be summed while still in cache.
_CHUNK_BYTES = 4 << 20
# Channels-last maps with fewer channels than this get their gate tiled over a few pixels.
_TILE_ELEMS = 256
# Below this many elements a map's passes cost less than the kernels' set-up: plain ops.
_SMALL = 1 << 15
# Channels-last samples at least this large get d/ds from the batch-norm backward kernel one
# sample at a time (its per-call cost pays off; measured 1.4–1.9× faster at 224 px stages 1–2).
_PER_SAMPLE = 1 << 17


# --------------------------------------------------------------------------------------------
# Small helpers: dtypes, layouts, autocast.
# --------------------------------------------------------------------------------------------
def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the excitation math: float32 for float32/bf16/fp16 tensors, float64 for float64."""
    return torch.promote_types(dtype, torch.float32)


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)


def _excite_dtype(x: torch.Tensor, w: torch.Tensor) -> torch.dtype:
    return compute_dtype(torch.promote_types(x.dtype, w.dtype))


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _nchw(*ts: torch.Tensor) -> bool:
    """All CPU tensors, one dtype, contiguous NCHW: the (N·C)-channel batch-norm views apply."""
    t0 = ts[0]
    return (
        t0.device.type == "cpu"
        and t0.dim() == 4
        and t0.numel() >= _SMALL
        and all(t.dtype == t0.dtype and t.shape == t0.shape and t.is_contiguous() for t in ts[1:])
        and t0.is_contiguous()
    )


def _cl_bn(*ts: torch.Tensor) -> bool:
    """Channels-last CPU maps of one dtype whose samples are large enough for per-sample BN calls."""
    t0 = ts[0]
    return (
        t0.device.type == "cpu"
        and t0.dim() == 4
        and t0.shape[0] > 0
        and t0[0].numel() >= _PER_SAMPLE
        and not t0.is_contiguous()
        and all(
            t.dtype == t0.dtype
            and t.shape == t0.shape
            and t.is_contiguous(memory_format=torch.channels_last)
            for t in ts
        )
    )


@functools.lru_cache(maxsize=16)
def _unit_stats(n: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Ones and zeros of length ``n`` (CPU): the mean-0, variance-1 statistics of the BN views
    (N·C or C long; a few sizes per model). Read-only: the kernels that take them never write."""
    return torch.ones(n, dtype=dtype), torch.zeros(n, dtype=dtype)


def _cl_tile(*ts: torch.Tensor) -> int:
    """Pixels per gate tile for channels-last CPU maps with few channels; 0: don't tile."""
    t0 = ts[0]
    _, c, h, w = t0.shape
    if t0.device.type != "cpu" or c >= _TILE_ELEMS or c == 1 or h * w == 1 or t0.numel() < _SMALL:
        return 0
    if not all(
        t.dtype == t0.dtype
        and t.shape == t0.shape
        and t.is_contiguous(memory_format=torch.channels_last)
        for t in ts
    ):
        return 0
    hw = h * w
    for tile in range(-(-_TILE_ELEMS // c), hw + 1):
        if hw % tile == 0:
            return tile
    return 0


def _tiled(t: torch.Tensor, tile: int) -> torch.Tensor:
    """A channels-last N×C×H×W map as N×(HW/tile)×(tile·C) (a view)."""
    n, c, h, w = t.shape
    return t.permute(0, 2, 3, 1).reshape(n, h * w // tile, tile * c)


def _tiled_vec(v: torch.Tensor, c: int, tile: int) -> torch.Tensor:
    """A per-(sample, channel) vector (N×C…) repeated over ``tile`` pixels: N×1×(tile·C)."""
    n = v.shape[0]
    return v.reshape(n, 1, 1, c).expand(n, 1, tile, c).reshape(n, 1, tile * c)


def _untile(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    n, c, h, w = shape
    return t.view(n, h, w, c).permute(0, 3, 1, 2)


# --------------------------------------------------------------------------------------------
# The passes over the feature map.
# --------------------------------------------------------------------------------------------
def mean_hw(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Mean over H×W as N×C in ``dtype`` (default: the excitation's dtype), one pass over ``x``."""
    dtype = dtype or compute_dtype(x.dtype)
    z = x.sum((2, 3))  # bf16: float32 accumulation, one rounding at the end
    return _as(z, dtype) * (1.0 / (x.shape[2] * x.shape[3]))


def axpy(x: torch.Tensor, s: torch.Tensor, shortcut: torch.Tensor | None = None) -> torch.Tensor:
    """``x · s (+ shortcut)`` for a gate ``s`` (N×C×1×1, ``x``'s dtype) in one pass."""
    tile = _cl_tile(x) if shortcut is None else _cl_tile(x, shortcut)
    if tile:
        c = x.shape[1]
        st = _tiled_vec(s, c, tile)
        xt = _tiled(x, tile)
        out = (
            torch.mul(xt, st) if shortcut is None else torch.addcmul(_tiled(shortcut, tile), xt, st)
        )
        return _untile(out, x.shape)
    return torch.mul(x, s) if shortcut is None else torch.addcmul(shortcut, x, s)


def scale_relu(
    x: torch.Tensor, s: torch.Tensor, shortcut: torch.Tensor | None, relu: bool
) -> torch.Tensor:
    """``relu?(x · s + shortcut?)``: one native pass for an N×C×1×1 gate of ``x``'s dtype on
    CPU maps where the kernels are built, else ``axpy`` and an in-place ReLU."""
    maps = (x,) if shortcut is None else (x, shortcut)
    if _per_channel(s, x) and s.shape[:2] == x.shape[:2] and native.applies(*maps):
        return native.scale(x, s.view(x.shape[0], x.shape[1]), shortcut, relu)
    out = _mul(x, s) if shortcut is None else _muladd(x, s, shortcut)
    return out.relu_() if relu else out


def _affine(g: torch.Tensor, s: torch.Tensor, d: torch.Tensor | None) -> torch.Tensor:
    """``g · s + d`` with ``s`` (N×C×1×1, ``g``'s dtype) and ``d`` (N×C, any float dtype) per map."""
    n, c = g.shape[:2]
    if d is None:
        return axpy(g, s)
    if _nchw(g):
        # BN inference kernel over an (N·C)-channel view: x·w + b with w = s, b = d, mean 0, var 1
        p = compute_dtype(g.dtype)
        nc = n * c
        ones, zeros = _unit_stats(nc, p)
        out = torch.batch_norm(
            g.view(1, nc, *g.shape[2:]),
            s.reshape(nc).to(p),
            d.reshape(nc).to(p),
            zeros,
            ones,
            False,
            0.0,
            0.0,
            False,
        )
        return out.view(g.shape)
    tile = _cl_tile(g)
    if tile:
        out = torch.addcmul(
            _tiled_vec(d.to(g.dtype), c, tile), _tiled(g, tile), _tiled_vec(s, c, tile)
        )
        return _untile(out, g.shape)
    return torch.addcmul(d.to(g.dtype).reshape(n, c, 1, 1), g, s)


def sum_hw_product(
    g: torch.Tensor, x: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``Σ_hw g·x`` as N×C in ``dtype`` (default: the excitation's): ``d/ds`` of ``x · s``."""
    dtype = dtype or compute_dtype(x.dtype)
    n, c = x.shape[:2]
    if _nchw(g, x):
        # BN backward over an (N·C)-channel view with mean 0 and inverse std 1: its grad_weight
        # is Σ g·x per channel, accumulated in float32 without forming the product map
        p = compute_dtype(x.dtype)
        nc = n * c
        ones, zeros = _unit_stats(nc, p)
        view = (1, nc, *x.shape[2:])
        _, gw, _ = torch.ops.aten.native_batch_norm_backward(
            g.view(view),
            x.view(view),
            ones,
            None,
            None,
            zeros,
            ones,
            True,
            0.0,
            [False, True, False],
        )
        return _as(gw.view(n, c), dtype)
    if _cl_bn(g, x):
        # the same BN backward, channels-last kernel, per sample (channels are per sample here)
        p = compute_dtype(x.dtype)
        ones, zeros = _unit_stats(c, p)
        parts = [
            torch.ops.aten.native_batch_norm_backward(
                g[i : i + 1],
                x[i : i + 1],
                ones,
                None,
                None,
                zeros,
                ones,
                True,
                0.0,
                [False, True, False],
            )[1]
            for i in range(n)
        ]
        return _as(torch.stack(parts), dtype)
    per_sample = x[0].numel() * x.element_size() if n else 1
    step = max(1, _CHUNK_BYTES // max(per_sample, 1))
    if step >= n:
        return _as((g * x).sum((2, 3)), dtype)
    parts = [(a * b).sum((2, 3)) for a, b in zip(g.split(step), x.split(step))]
    return _as(torch.cat(parts), dtype)


# --------------------------------------------------------------------------------------------
# The excitation on the N×C descriptor, forward and backward by hand.
# --------------------------------------------------------------------------------------------
def _matrix(w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return _as(w.view(w.shape[0], -1) if w.is_contiguous() else w.reshape(w.shape[0], -1), dtype)


def _linear(z: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    if b is None:
        return torch.mm(z, w.t())
    return torch.addmm(_as(b, z.dtype), z, w.t())


def excite_nc(
    z: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor | None,
    w2: torch.Tensor,
    b2: torch.Tensor | None,
    gate: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h, s)`` with ``h = relu(W1 z + b1)``, ``s = gate(W2 h + b2)`` on N×C ``z``, in ``z``'s dtype."""
    h = _linear(z, _matrix(w1, z.dtype), b1).relu_()
    return h, apply_gate(_linear(h, _matrix(w2, z.dtype), b2), gate)


def _gate_grad(gs: torch.Tensor, s: torch.Tensor, gate: str) -> torch.Tensor:
    if gate == "sigmoid":
        return torch.ops.aten.sigmoid_backward(gs, s)
    if gate == "tanh":
        return torch.ops.aten.tanh_backward(gs, s)
    return torch.ops.aten.threshold_backward(gs, s, 0)


def excite_backward(
    gs: torch.Tensor,
    z: torch.Tensor,
    h: torch.Tensor,
    s: torch.Tensor,
    params: tuple[torch.Tensor | None, ...],
    gate: str,
    wanted: tuple[bool, ...],
) -> tuple[torch.Tensor | None, ...]:
    """Gradients of ``excite_nc`` for ``d/ds = gs``: ``(dz, dW1, db1, dW2, db2)``; ``wanted`` masks them."""
    w1, b1, w2, b2 = params
    gt = _gate_grad(gs, s, gate)
    gh = torch.ops.aten.threshold_backward(torch.mm(gt, _matrix(w2, gt.dtype)), h, 0)
    out: list[torch.Tensor | None] = [None] * 5
    if wanted[0]:
        out[0] = torch.mm(gh, _matrix(w1, gh.dtype))
    if wanted[1]:
        out[1] = _as(torch.mm(gh.t(), z).view(w1.shape), w1.dtype)
    if wanted[2] and b1 is not None:
        out[2] = _as(gh.sum(0), b1.dtype)
    if wanted[3]:
        out[3] = _as(torch.mm(gt.t(), h).view(w2.shape), w2.dtype)
    if wanted[4] and b2 is not None:
        out[4] = _as(gt.sum(0), b2.dtype)
    return tuple(out)


def excite(
    z: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor | None,
    w2: torch.Tensor,
    b2: torch.Tensor | None,
    gate: str,
) -> torch.Tensor:
    """``gate(W2 relu(W1 z + b1) + b2)`` (Eq. 3) on N×C(×1×1) ``z``: float32 math, autocast off,
    the result N×C×1×1 in ``z``'s dtype. Differentiable through ordinary autograd."""
    n = z.shape[0]
    with _autocast_off(z.device.type):
        zc = _as(z.reshape(n, -1), _excite_dtype(z, w1))
        _, s = excite_nc(zc, w1, b1, w2, b2, gate)
    return _as(s, z.dtype).view(n, -1, 1, 1)


def squeeze_1x1(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``W · mean_hw(h) + b`` as N×C in the excitation's dtype (float32 math, autocast off)."""
    with _autocast_off(h.device.type):
        z = mean_hw(h, _excite_dtype(h, weight))
        return _linear(z, _matrix(weight, z.dtype), bias)


# --------------------------------------------------------------------------------------------
# The whole SE block as one autograd Function.
# --------------------------------------------------------------------------------------------
class _SqueezeExcite(torch.autograd.Function):
    """The whole SE block with its residual sum: ``relu?(x · s(x) + shortcut?)``, avg squeeze.

    Forward: squeeze (one pass), float32 excitation, ``se.gate_out`` (so hooks see ``s``, in the
    map's dtype), one ``addcmul``, in-place ReLU. Backward: the ReLU mask from the saved output,
    ``d/ds`` in one pass, the excitation's backward on N×C tensors, then ``d/dx = g·s + dz/HW``
    in one pass: the squeeze's gradient is never broadcast into a map of its own.
    """

    @staticmethod
    def forward(ctx, x, shortcut, w1, b1, w2, b2, se, relu):  # type: ignore[override]
        n, c = x.shape[:2]
        z = mean_hw(x, _excite_dtype(x, w1))
        s = se.excite(z)  # the block's own excitation: float32 math, gate_out hooks see s
        sx = _as(s, x.dtype)
        out = scale_relu(x, sx, shortcut, relu)
        ctx.gate, ctx.relu, ctx.has_shortcut = se.gate, relu, shortcut is not None
        ctx.save_for_backward(x, z, s.view(n, c), sx, out if relu else None, w1, b1, w2, b2)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, z, s, sx, out, w1, b1, w2, b2 = ctx.saved_tensors
        need = ctx.needs_input_grad
        h = _linear(z, _matrix(w1, z.dtype), b1).relu_()  # recomputed: N×hidden, cheap
        fused = native.applies(x, grad)
        if fused and ctx.relu:
            g, gs = native.relu_grad_sum(grad, out, x)  # the ReLU mask and d/ds in one pass
        elif fused:
            g, gs = grad, native.product_sum(grad, x)
        else:
            g = torch.ops.aten.threshold_backward(grad, out, 0) if ctx.relu else grad
            gs = sum_hw_product(g, x, z.dtype)
        wanted = (need[0], need[2], need[3], need[4], need[5])
        dz, *gparams = excite_backward(
            _as(gs, z.dtype), z, h, s, (w1, b1, w2, b2), ctx.gate, wanted
        )
        gx = None
        if need[0]:
            d = dz * (1.0 / (x.shape[2] * x.shape[3]))
            gx = native.affine(g, sx, d) if fused else _affine(g, sx, d)
        gsc = g if ctx.has_shortcut and need[1] else None
        return gx, gsc, *gparams, None, None


def _hooked(module: torch.nn.Module) -> bool:
    """Hooks would see what ``module`` computes: its own, or any module's global hooks. (Read
    from the instance dict: ``getattr`` over the eight names cost 1.5 µs, this check runs for
    every SE block and call.)"""
    d, g = module.__dict__, nn_module.__dict__
    return bool(
        d.get("_forward_hooks")
        or d.get("_forward_pre_hooks")
        or d.get("_backward_hooks")
        or d.get("_backward_pre_hooks")
        or g.get("_global_forward_hooks")
        or g.get("_global_forward_pre_hooks")
        or g.get("_global_backward_hooks")
        or g.get("_global_backward_pre_hooks")
    )


_FCWeights = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]


def fc_hooked(se: torch.nn.Module) -> bool:
    """A hook is on the SE block's ``fc1`` or ``fc2``: ``torch.nn.utils.prune``'s pre-hook computes
    the weight, a forward hook wants to see the layer's output. The block then calls them as
    modules (``ops.excite_block``) instead of reading their weights."""
    mods = se._modules
    return _hooked(mods["fc1"]) or _hooked(mods["fc2"])


def _fc_weights(se: torch.nn.Module) -> _FCWeights:
    """(W1, b1, W2, b2) of an SE block's two FC layers (callers have checked ``fc_hooked``). Read
    from the modules' own dicts where they are plain parameters: ``nn.Module.__getattr__`` costs
    ~1 µs a lookup, which at batch 1 was a fifth of the node's Python time (parametrized layers
    take the slow road)."""
    mods = se._modules
    p1, p2 = mods["fc1"]._parameters, mods["fc2"]._parameters
    if "weight" in p1 and "bias" in p1 and "weight" in p2 and "bias" in p2:
        return p1["weight"], p1["bias"], p2["weight"], p2["bias"]  # type: ignore[return-value]
    return se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias


def _native_block(
    se: torch.nn.Module,
    x: torch.Tensor,
    shortcut: torch.Tensor | None,
    weights: _FCWeights,
) -> bool:
    """The whole block can run as the native C++ node: the kernels apply to the maps, the FC
    weights (``_fc_weights(se)``) are float32/bf16, the block's ``excite`` is the standard one
    and no hook on ``gate_out`` expects to see ``s`` (those take the Python Function, which
    calls ``excite``)."""
    maps = (x,) if shortcut is None else (x, shortcut)
    w1, _, w2, _ = weights
    return (
        native.applies(*maps)
        and w1.dtype in (torch.float32, torch.bfloat16)
        and w2.dtype == w1.dtype
        and getattr(se, "standard_excite", False)
        and not _hooked(se._modules.get("gate_out") or se.gate_out)
    )


def squeeze_excite(
    se: torch.nn.Module, x: torch.Tensor, shortcut: torch.Tensor | None = None, relu: bool = False
) -> torch.Tensor:
    """``relu?(x · se.excitation(x) + shortcut?)`` for an average-squeeze SE block, fused."""
    weights = _fc_weights(se)
    w1, b1, w2, b2 = weights
    if _native_block(se, x, shortcut, weights):
        return native.squeeze_excite(x, shortcut, weights, se.gate, relu)
    if torch.is_grad_enabled() and (
        x.requires_grad
        or w1.requires_grad
        or w2.requires_grad
        or (b1 is not None and b1.requires_grad)
        or (b2 is not None and b2.requires_grad)
        or (shortcut is not None and shortcut.requires_grad)
    ):
        return _SqueezeExcite.apply(x, shortcut, w1, b1, w2, b2, se, relu)
    return scale_relu(x, se.excitation(x), shortcut, relu)


def _native_bn_block(
    se: torch.nn.Module,
    bn: torch.nn.Module,
    y: torch.Tensor,
    shortcut: torch.Tensor | None,
    weights: _FCWeights,
) -> bool:
    """The native node can take ``bn`` into the SE block: ``_native_block`` holds and ``bn`` is a
    plain affine BatchNorm2d with float32 running statistics and no hooks (those see ``bn(y)``,
    which the node never writes; ``fold_batchnorm`` finds its pairs by hooks)."""
    return (
        native.bn_inside()
        and type(bn) is torch.nn.BatchNorm2d
        and bn.affine
        and bn.track_running_stats
        and not _hooked(bn)  # before the dicts: pruning moves "weight" out (and adds a hook)
        and bn._parameters["weight"].dtype == bn._buffers["running_mean"].dtype == torch.float32
        and _native_block(se, y, shortcut, weights)
    )


def bn_squeeze_excite(
    se: torch.nn.Module,
    bn: torch.nn.Module,
    y: torch.Tensor,
    shortcut: torch.Tensor | None = None,
    relu: bool = False,
) -> torch.Tensor:
    """``squeeze_excite(se, bn(y), shortcut, relu)``; the native node runs the BatchNorm inside
    the SE block's passes (``bn(y)`` is never written; its running statistics are updated)."""
    weights = _fc_weights(se)
    if _native_bn_block(se, bn, y, shortcut, weights):
        return native.bn_squeeze_excite(y, shortcut, bn, weights, se.gate, relu)
    return squeeze_excite(se, bn(y), shortcut, relu)


def excitation(se: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``se.excite(squeeze(x))`` with the squeeze's descriptor in float32 (one pass over ``x``);
    the gate comes back in ``x``'s dtype, N×C×1×1."""
    dtype = _excite_dtype(x, se.fc1.weight)
    z = mean_hw(x, dtype) if se.squeeze == "avg" else _as(x.amax((2, 3)), dtype)
    return _as(se.excite(z), x.dtype)


# --------------------------------------------------------------------------------------------
# Separate ops (max squeeze, NoSqueeze, custom code).
# --------------------------------------------------------------------------------------------
def _needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _per_channel(s: torch.Tensor, x: torch.Tensor) -> bool:
    """``s`` is an N×C×1×1 gate of ``x``'s dtype, so the one-pass map kernels apply."""
    return s.dim() == 4 and s.shape[2:] == (1, 1) and s.dtype == x.dtype


def _mul(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return axpy(x, s) if _per_channel(s, x) else torch.mul(x, s)


def _muladd(x: torch.Tensor, s: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    return axpy(x, s, shortcut) if _per_channel(s, x) else torch.addcmul(shortcut, x, s)


def _scale_grad(grad: torch.Tensor, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``d/ds`` of ``x · s``, reduced over the dims ``s`` broadcasts (N×C×1×1 or a full map)."""
    if (
        s.dim() == 4
        and s.shape[2:] == (1, 1)
        and s.shape[:2] == x.shape[:2]
        and grad.dtype == x.dtype
    ):
        return sum_hw_product(grad, x, s.dtype).view(s.shape)
    return (grad * x).sum_to_size(s.shape)


class _ScaleAdd(torch.autograd.Function):
    """``relu?(x · s + shortcut)`` with one allocation forward and a lean backward."""

    @staticmethod
    def forward(ctx, x, s, shortcut, relu):  # type: ignore[override]
        out = scale_relu(x, s, shortcut, relu)
        ctx.relu = relu
        ctx.save_for_backward(x, s, out if relu else None)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, s, out = ctx.saved_tensors
        if ctx.relu:
            grad = torch.ops.aten.threshold_backward(grad, out, 0)
        gx = _mul(grad, s) if ctx.needs_input_grad[0] else None
        gs = _scale_grad(grad, x, s) if ctx.needs_input_grad[1] else None
        gsc = grad if ctx.needs_input_grad[2] else None
        return gx, gs, gsc, None


class _Scale(torch.autograd.Function):
    """``x · s`` whose backward reduces ``d/ds`` without autograd's generic broadcast handling."""

    @staticmethod
    def forward(ctx, x, s):  # type: ignore[override]
        ctx.save_for_backward(x, s)
        return _mul(x, s)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, s = ctx.saved_tensors
        gx = _mul(grad, s) if ctx.needs_input_grad[0] else None
        gs = _scale_grad(grad, x, s) if ctx.needs_input_grad[1] else None
        return gx, gs


class _AvgSqueeze(torch.autograd.Function):
    """Global average pooling whose backward hands back a broadcast *view* of ``dz / HW``.

    Autograd's ``mean`` backward materialises ``dz / HW`` as a full map, then adds it to the
    gradient the scale op already produced for the same tensor. A zero-stride view is added in
    place into that gradient instead: one pass, no allocation.
    """

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.shape = x.shape
        return _mean4d(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        h, w = ctx.shape[2], ctx.shape[3]
        return (grad / (h * w)).expand(ctx.shape)


def _mean4d(x: torch.Tensor) -> torch.Tensor:
    return mean_hw(x).to(x.dtype).view(x.shape[0], x.shape[1], 1, 1)


def squeeze_avg(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling to N×C×1×1 (the paper's z_c, Eq. 2), in ``x``'s dtype."""
    return _AvgSqueeze.apply(x) if _needs_grad(x) else _mean4d(x)


def scale(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Channel-wise rescaling ``x · s`` (Eq. 4)."""
    return _Scale.apply(x, s) if _needs_grad(x, s) else _mul(x, s)


def scale_add(
    x: torch.Tensor, s: torch.Tensor, shortcut: torch.Tensor, relu: bool = True
) -> torch.Tensor:
    """``relu(x · s + shortcut)`` (``relu=False``: without the ReLU, for pre-activation blocks)."""
    if _needs_grad(x, s, shortcut):
        return _ScaleAdd.apply(x, s, shortcut, relu)
    return scale_relu(x, s, shortcut, relu)


def add_relu(x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """``relu(x + shortcut)`` with one allocation (the residual sum of a block without SE)."""
    out = torch.add(x, shortcut)
    return out.relu_()
