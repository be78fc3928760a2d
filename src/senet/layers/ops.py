"""The SE block's element-wise operations, in one place so that a fast path can replace them.

Every function here is the plain reference: the same arithmetic the paper describes, written with
ordinary PyTorch ops. ``scale_add_relu`` is the original release's *Axpy* layer (channel-wise scale
fused with the residual sum) followed by the block's ReLU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def squeeze(x: torch.Tensor, op: str = "avg") -> torch.Tensor:
    """Global pooling over H×W to N×C×1×1 (``avg``: the paper's z_c; ``max``: Table 11)."""
    if op == "avg":
        return x.mean((2, 3), keepdim=True)
    if op == "max":
        return x.amax((2, 3), keepdim=True)
    raise ValueError(f"squeeze op {op!r} is not supported; choose avg or max")


def apply_gate(t: torch.Tensor, gate: str) -> torch.Tensor:
    """The excitation's final non-linearity (sigmoid in the paper; tanh/ReLU in Table 12)."""
    if gate == "sigmoid":
        return torch.sigmoid(t)
    if gate == "tanh":
        return torch.tanh(t)
    if gate == "relu":
        return F.relu(t)
    raise ValueError(f"gate {gate!r} is not supported; choose sigmoid, tanh or relu")


def excite(
    z: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor | None,
    w2: torch.Tensor,
    b2: torch.Tensor | None,
    gate: str,
) -> torch.Tensor:
    """``gate(W2 relu(W1 z + b1) + b2)`` on the pooled descriptor ``z`` (N×C×1×1)."""
    h = F.relu(F.conv2d(z, w1, b1))
    return apply_gate(F.conv2d(h, w2, b2), gate)


def scale(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Channel-wise rescaling ``x̃_c = s_c · u_c`` (Eq. 4)."""
    return x * s


def scale_add_relu(x: torch.Tensor, s: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """``relu(x · s + shortcut)``: SE scale, residual sum and ReLU (the release's Axpy + ReLU)."""
    return F.relu(x * s + shortcut)
