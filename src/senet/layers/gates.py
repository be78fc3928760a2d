"""The excitation's final non-linearity (Sec. 3.2; Table 12), shared by both SE paths."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def apply_gate(t: torch.Tensor, gate: str) -> torch.Tensor:
    """The excitation's final non-linearity (sigmoid in the paper; tanh/ReLU in Table 12)."""
    if gate == "sigmoid":
        return torch.sigmoid(t)
    if gate == "tanh":
        return torch.tanh(t)
    if gate == "relu":
        return F.relu(t)
    raise ValueError(f"gate {gate!r} is not supported; choose sigmoid, tanh or relu")
