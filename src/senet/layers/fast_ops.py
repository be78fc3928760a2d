"""Fast kernels for the SE block's element-wise ops (CPU first; any device works).

The reference ops (``senet.layers.ops``) cost SE its run time not in arithmetic but in memory
traffic: ``relu(x * s + shortcut)`` allocates three feature-map-sized tensors in the forward and
autograd allocates four more in the backward. On CPU, a fresh allocation of a large map is paid in
page faults (measured: allocating a 51 MB map costs as much as two passes over it), so the fast path
allocates once and works in place:

- ``scale_add``: ``relu(x · s + shortcut)`` — the original release's Axpy layer fused with the
  block's ReLU (Sec. 3 / the release's ``Axpy``) — as one ``torch.autograd.Function``. Forward: one
  pass and one allocation (``addcmul``: ``shortcut + x · s`` as a fused multiply-add, so within one
  rounding of the reference's separate multiply and add), then ``relu_`` in place. Backward: the ReLU mask comes from
  the saved output (no mask tensor), ``s`` is never broadcast into a full map, and ``d/ds`` is
  reduced without keeping a product around. It saves ``x``, ``s`` and the output, which autograd's
  reference graph saves too.
- ``scale``: ``x · s`` as a Function with the same lean backward (for SE-PRE/3×3/POST/identity).
- ``squeeze_avg``: the mean, whose backward returns a broadcast view that autograd adds in place
  into the scale op's gradient (the reference materialises ``dz/HW`` as a full map first).
- ``excite``: the two FC layers as ``F.linear`` on the pooled N×C vector (views of the stored 1×1
  convolution weights, so gradients reach them unchanged); a 1×1 convolution on a 1×1 map goes
  through the slow generic convolution kernel on CPU (measured ≈100 µs per call at batch 1).

Under ``torch.compile`` the reference ops are used instead (``senet.layers.ops`` decides): Inductor
fuses plain element-wise code better than it can see through a custom Function.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from senet.layers.gates import apply_gate


def excite(
    z: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor | None,
    w2: torch.Tensor,
    b2: torch.Tensor | None,
    gate: str,
) -> torch.Tensor:
    """``gate(W2 relu(W1 z + b1) + b2)`` with ``F.linear`` on the N×C descriptor (Eq. 3)."""

    n, c = z.shape[:2]
    h = F.relu(F.linear(z.reshape(n, c), w1.reshape(w1.shape[0], -1), b1))
    t = F.linear(h, w2.reshape(w2.shape[0], -1), b2)
    return apply_gate(t, gate).reshape(n, -1, 1, 1)


# Temporaries above glibc's largest mmap threshold (32 MiB) are page-faulted afresh on every
# allocation; products for d/ds are formed a few samples at a time so they stay below it.
_CHUNK_BYTES = 8 << 20


def _scale_grad(grad: torch.Tensor, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``d/ds`` of ``x · s``: ``grad · x`` summed over the dims ``s`` broadcasts, in small chunks."""
    n = x.shape[0]
    per_sample = x[0].numel() * x.element_size() if n else 1
    step = max(1, _CHUNK_BYTES // max(per_sample, 1))
    if s.shape[0] != n or step >= n:
        return (grad * x).sum_to_size(s.shape)
    rest = s.shape[1:]
    parts = [
        (g * xi).sum_to_size((g.shape[0], *rest)) for g, xi in zip(grad.split(step), x.split(step))
    ]
    return torch.cat(parts)


class _ScaleAdd(torch.autograd.Function):
    """``relu?(x · s + shortcut)`` with one allocation forward and a lean backward."""

    @staticmethod
    def forward(ctx, x, s, shortcut, relu):  # type: ignore[override]
        out = torch.addcmul(shortcut, x, s)
        if relu:
            out.relu_()
        ctx.relu = relu
        ctx.save_for_backward(x, s, out if relu else None)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, s, out = ctx.saved_tensors
        if ctx.relu:
            grad = torch.ops.aten.threshold_backward(grad, out, 0)
        gx = grad * s if ctx.needs_input_grad[0] else None
        gs = _scale_grad(grad, x, s) if ctx.needs_input_grad[1] else None
        gsc = grad if ctx.needs_input_grad[2] else None
        return gx, gs, gsc, None


class _Scale(torch.autograd.Function):
    """``x · s`` whose backward reduces ``d/ds`` without autograd's generic broadcast handling."""

    @staticmethod
    def forward(ctx, x, s):  # type: ignore[override]
        ctx.save_for_backward(x, s)
        return torch.mul(x, s)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, s = ctx.saved_tensors
        gx = grad * s if ctx.needs_input_grad[0] else None
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
        return x.mean((2, 3), keepdim=True)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        h, w = ctx.shape[2], ctx.shape[3]
        return (grad / (h * w)).expand(ctx.shape)


def squeeze_avg(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling to N×C×1×1 (the paper's z_c, Eq. 2)."""
    if _needs_grad(x):
        return _AvgSqueeze.apply(x)
    return x.mean((2, 3), keepdim=True)


class _SqueezeExcite(torch.autograd.Function):
    """The whole SE block with its residual sum: ``relu?(x · s(x) + shortcut?)``, avg squeeze.

    Autograd over separate ops writes ``d/dx`` twice: ``g · s`` from the scale, then the squeeze's
    ``dz / HW`` added into it (a full read-modify-write pass). Here the backward first reduces
    ``d/ds = Σ g·x``, takes it back through the (tiny) excitation to ``dz``, and only then writes
    ``d/dx = dz/HW + g · s`` in one ``addcmul``: one pass fewer, and no broadcast map.
    The forward runs the block's own ``excite`` (so ``gate_out`` hooks see ``s``); the backward
    recomputes the excitation from the saved ``z`` without hooks (they may read ``s``, not change it).
    """

    @staticmethod
    def forward(ctx, x, shortcut, w1, b1, w2, b2, se, relu):  # type: ignore[override]
        z = x.mean((2, 3), keepdim=True)
        s = se.excite(z)
        out = torch.mul(x, s) if shortcut is None else torch.addcmul(shortcut, x, s)
        if relu:
            out.relu_()
        ctx.gate, ctx.relu, ctx.has_shortcut = se.gate, relu, shortcut is not None
        device = x.device.type  # backward recomputes the excitation under the forward's autocast
        ctx.autocast = (
            (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
            if torch.amp.is_autocast_available(device)
            else None  # e.g. meta tensors (shape inference): no autocast there
        )
        ctx.save_for_backward(x, z, s, out if relu else None, w1, b1, w2, b2)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, z, s, out, w1, b1, w2, b2 = ctx.saved_tensors
        if ctx.relu:
            grad = torch.ops.aten.threshold_backward(grad, out, 0)
        gs = _scale_grad(grad, x, s)
        params = [w1, b1, w2, b2]
        wanted = [i for i, p in enumerate(params) if p is not None and ctx.needs_input_grad[2 + i]]
        amp = contextlib.nullcontext()
        if ctx.autocast is not None:
            device, enabled, dtype = ctx.autocast
            amp = torch.autocast(device, dtype=dtype, enabled=enabled)
        with torch.enable_grad(), amp:
            z_ = z.detach().requires_grad_(ctx.needs_input_grad[0])
            leaves = [p.detach().requires_grad_(True) if p is not None else None for p in params]
            s_ = excite(z_, *leaves, ctx.gate)
            inputs = ([z_] if ctx.needs_input_grad[0] else []) + [leaves[i] for i in wanted]
            grads = list(torch.autograd.grad(s_, inputs, gs)) if inputs else []
        gx = None
        if ctx.needs_input_grad[0]:
            dz = grads.pop(0) / (x.shape[2] * x.shape[3])
            gx = torch.addcmul(dz, grad, s)  # dz broadcasts over H×W: one pass, one allocation
        gparams: list[torch.Tensor | None] = [None] * 4
        for i, g in zip(wanted, grads, strict=True):
            gparams[i] = g
        gsc = grad if ctx.has_shortcut and ctx.needs_input_grad[1] else None
        return gx, gsc, *gparams, None, None


def squeeze_excite(
    se: torch.nn.Module, x: torch.Tensor, shortcut: torch.Tensor | None = None, relu: bool = False
) -> torch.Tensor:
    """``relu?(x · se.excitation(x) + shortcut?)`` for an average-squeeze SE block, fused."""
    p = (se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias)
    tensors = [x, *(t for t in (shortcut, *p) if t is not None)]
    if not _needs_grad(*tensors):
        s = se.excitation(x)
        out = torch.mul(x, s) if shortcut is None else torch.addcmul(shortcut, x, s)
        return out.relu_() if relu else out
    return _SqueezeExcite.apply(x, shortcut, *p, se, relu)


def _needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def scale(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Channel-wise rescaling ``x · s`` (Eq. 4)."""
    if _needs_grad(x, s):
        return _Scale.apply(x, s)
    return torch.mul(x, s)


def scale_add(
    x: torch.Tensor, s: torch.Tensor, shortcut: torch.Tensor, relu: bool = True
) -> torch.Tensor:
    """``relu(x · s + shortcut)`` (``relu=False``: without the ReLU, for pre-activation blocks)."""
    if _needs_grad(x, s, shortcut):
        return _ScaleAdd.apply(x, s, shortcut, relu)
    out = torch.addcmul(shortcut, x, s)
    return out.relu_() if relu else out


def add_relu(x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """``relu(x + shortcut)`` with one allocation (the residual sum of a block without SE)."""
    out = torch.add(x, shortcut)
    return out.relu_()
