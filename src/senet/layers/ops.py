"""The SE block's element-wise operations, in one place so that a fast path can replace them.

Each public function dispatches to the **fast path** (``senet.layers.fast_ops``, on by default) or
to the **reference path** below: the same arithmetic the paper describes, written with ordinary
PyTorch ops. Both give the same numbers within float32 rounding (the fused scale+add is one
multiply-add; tests/test_fast_path.py holds the tolerances). ``scale_add_relu`` is the original
release's *Axpy* layer (channel-wise scale fused with the residual sum) followed by the ReLU.

Switch (see docs/performance.md)::

    senet.layers.ops.set_fast_path(False)      # process-wide
    with senet.layers.ops.reference_path(): ...  # for a block of code
    SENET_FAST_PATH=0 senet ...                  # from the environment, read at import

Under ``torch.compile`` and ``torch.fx.symbolic_trace`` the reference ops are always used: the
compiler fuses them itself, and a traced graph records them as ordinary nodes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.fx import Proxy

from senet.layers import fast_ops
from senet.layers.gates import apply_gate


def _env_default() -> bool:
    value = os.environ.get("SENET_FAST_PATH", "1").strip().lower()
    if value in ("1", "true", "yes", "on", ""):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(
        f"SENET_FAST_PATH={value!r} is not understood; set it to 1 (fast) or 0 (reference)"
    )


_FAST = _env_default()


def set_fast_path(enabled: bool) -> None:
    """Select the fast SE ops (``True``, the default) or the plain reference ops (``False``)."""
    global _FAST
    _FAST = bool(enabled)


def fast_path_enabled() -> bool:
    """Whether SE blocks currently run the fast path."""
    return _FAST


@contextlib.contextmanager
def reference_path() -> Iterator[None]:
    """Run the enclosed code on the plain reference ops, then restore the previous setting."""
    previous = _FAST
    set_fast_path(False)
    try:
        yield
    finally:
        set_fast_path(previous)


@contextlib.contextmanager
def fast_path() -> Iterator[None]:
    """Run the enclosed code on the fast ops, then restore the previous setting."""
    previous = _FAST
    set_fast_path(True)
    try:
        yield
    finally:
        set_fast_path(previous)


def _use_fast(x: object) -> bool:
    """The fast path is on, and nobody is compiling or FX-tracing the model: Inductor fuses the
    reference ops itself, and ``torch.fx.symbolic_trace`` (torchvision's
    ``create_feature_extractor``, FX quantization) should record the real ops, which a custom
    autograd Function and the fast path's shape-dependent kernel choice would hide or break.
    (Under symbolic tracing the tensors are ``torch.fx.Proxy`` objects.)"""
    return _FAST and not isinstance(x, Proxy) and not torch.compiler.is_compiling()


# --------------------------------------------------------------------------------------------
# The ops the blocks call.
# --------------------------------------------------------------------------------------------
def squeeze(x: torch.Tensor, op: str = "avg") -> torch.Tensor:
    """Global pooling over H×W to N×C×1×1 (``avg``: the paper's z_c; ``max``: Table 11).

    The forward is one ``mean`` in both paths (a single reduction on CPU in either memory layout;
    measured: ``adaptive_avg_pool2d`` and ``sum``-then-scale are no faster); the fast path's
    backward avoids materialising the broadcast gradient.
    """
    if op == "avg":
        return fast_ops.squeeze_avg(x) if _use_fast(x) else x.mean((2, 3), keepdim=True)
    if op == "max":
        return x.amax((2, 3), keepdim=True)
    raise ValueError(f"squeeze op {op!r} is not supported; choose avg or max")


def excite(
    z: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor | None,
    w2: torch.Tensor,
    b2: torch.Tensor | None,
    gate: str,
) -> torch.Tensor:
    """``gate(W2 relu(W1 z + b1) + b2)`` on the pooled descriptor ``z`` (N×C×1×1), Eq. 3."""
    if _use_fast(z):
        return fast_ops.excite(z, w1, b1, w2, b2, gate)
    return ref_excite(z, w1, b1, w2, b2, gate)


def excitation(se: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The gate ``s = se.excite(squeeze(x))`` of an avg/max-squeeze SE block (N×C×1×1, ``x``'s
    dtype). The fast path squeezes into a float32 descriptor (``fast_ops.excitation``)."""
    if _use_fast(x):
        return fast_ops.excitation(se, x)
    return se.excite(squeeze(x, se.squeeze))


def excite_block(se: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """``gate(fc2(relu(fc1(z))))`` with an SE block's own FC layers on ``z`` (N×C×1×1), Eq. 3.

    The reference path calls the ``fc1``/``fc2`` modules, so a traced graph shows them as
    ``…se.fc1``/``…se.fc2`` nodes (feature extraction, FX quantization); the fast path runs
    them as float32 matrix products on the N×C descriptor (``fast_ops.excite``), except where
    hooks are on ``fc1``/``fc2`` (pruning's among them): those are called as modules.
    """
    if _use_fast(z) and not fast_ops.fc_hooked(se):
        return fast_ops.excite(z, se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias, se.gate)
    # float32 FC weights on a reduced-precision map (``fuse.cast_for_inference``); checked on real
    # tensors only: under FX tracing, reading ``fc1.weight`` would add a node that fusion breaks
    if isinstance(z, torch.Tensor) and not torch.is_autocast_enabled(z.device.type):
        w = se.fc1.weight
        if z.dtype != w.dtype:
            return apply_gate(se.fc2(F.relu(se.fc1(z.to(w.dtype)))), se.gate).to(z.dtype)
    return apply_gate(se.fc2(F.relu(se.fc1(z))), se.gate)


def squeeze_1x1(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``mean_hw(conv1x1(h))`` as N×C, computed as ``W · mean_hw(h) + b`` (exact for a 1×1,
    stride-1, unpadded convolution; ``senet.layers.fuse.squeeze_early``)."""
    if _use_fast(h):
        return fast_ops.squeeze_1x1(h, weight, bias)
    return F.linear(h.mean((2, 3)), weight.reshape(weight.shape[0], -1), bias)


def scale(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Channel-wise rescaling ``x̃_c = s_c · u_c`` (Eq. 4)."""
    return fast_ops.scale(x, s) if _use_fast(x) else ref_scale(x, s)


def scale_add_relu(x: torch.Tensor, s: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """``relu(x · s + shortcut)``: SE scale, residual sum and ReLU (the release's Axpy + ReLU)."""
    if _use_fast(x):
        return fast_ops.scale_add(x, s, shortcut, relu=True)
    return ref_scale_add_relu(x, s, shortcut)


def scale_add(x: torch.Tensor, s: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """``x · s + shortcut``: Axpy without the ReLU (pre-activation blocks)."""
    if _use_fast(x):
        return fast_ops.scale_add(x, s, shortcut, relu=False)
    return ref_scale(x, s) + shortcut


def squeeze_excite(
    se: torch.nn.Module,
    x: torch.Tensor,
    shortcut: torch.Tensor | None = None,
    relu: bool = False,
) -> torch.Tensor:
    """The SE block applied to ``x``, optionally with the residual sum and ReLU after it.

    ``x · s`` (``SqueezeExcitation.forward``), ``x · s + shortcut`` (pre-activation blocks) or
    ``relu(x · s + shortcut)`` (Axpy + ReLU), with ``s = se.excitation(x)``. The fast path runs
    an average-squeeze block as one autograd Function (``fast_ops.squeeze_excite``), unless hooks
    are on its FC layers (``torch.nn.utils.prune`` among them): those run as modules.
    """
    if se.squeeze == "avg" and _use_fast(x) and not fast_ops.fc_hooked(se):
        return fast_ops.squeeze_excite(se, x, shortcut, relu)
    s = se.excitation(x)
    if shortcut is None:
        out = scale(x, s)
        return F.relu(out) if relu else out
    return scale_add_relu(x, s, shortcut) if relu else scale_add(x, s, shortcut)


def bn_squeeze_excite(
    se: torch.nn.Module,
    bn: torch.nn.Module,
    y: torch.Tensor,
    shortcut: torch.Tensor,
) -> torch.Tensor:
    """``relu(x · se.excitation(x) + shortcut)`` with ``x = bn(y)``: a residual block's last
    BatchNorm, its SE block, the residual sum and the ReLU. The fast path runs the BatchNorm
    inside the SE block's own passes where the native kernels apply (``x`` is never written:
    ``fast_ops.bn_squeeze_excite``); the result is the same as ``squeeze_excite(se, bn(y), …)``.
    """
    if se.squeeze == "avg" and _use_fast(y) and not fast_ops.fc_hooked(se):
        return fast_ops.bn_squeeze_excite(se, bn, y, shortcut, relu=True)
    return squeeze_excite(se, bn(y), shortcut, relu=True)


def add_relu(x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """``relu(x + shortcut)``: the residual sum and ReLU of a block (with or without SE)."""
    return fast_ops.add_relu(x, shortcut) if _use_fast(x) else F.relu(x + shortcut)


# --------------------------------------------------------------------------------------------
# The reference path: plain PyTorch, exactly as the paper writes the block.
# --------------------------------------------------------------------------------------------
def ref_excite(
    z: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor | None,
    w2: torch.Tensor,
    b2: torch.Tensor | None,
    gate: str,
) -> torch.Tensor:
    """Reference excitation: the FCs as 1×1 convolutions on the N×C×1×1 descriptor."""
    h = F.relu(F.conv2d(z, w1, b1))
    return apply_gate(F.conv2d(h, w2, b2), gate)


def ref_scale(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Reference channel-wise rescaling."""
    return x * s


def ref_scale_add_relu(x: torch.Tensor, s: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """Reference Axpy + ReLU."""
    return F.relu(x * s + shortcut)
