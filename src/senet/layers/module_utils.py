"""Small helpers the inference rewrites share: one hooked example pass, submodule replacement."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def run_hooked(model: nn.Module, example: torch.Tensor, handles: Iterable[RemovableHandle]) -> None:
    """Run ``example`` through ``model`` once without grad, then remove the ``handles``."""
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()


def replace_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` where ``model.get_submodule(name)`` is (``name``: dotted path)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)
