"""Inference rewrites that SE does not defeat: BN folding, and the squeeze moved before conv3.

``optimize_for_inference`` applies both (``fold_batchnorm``, then ``squeeze_early``).

``torch.jit.optimize_for_inference`` folds BN and fuses conv+ReLU into MKL-DNN ops, but an SE
block's pooling and channel-wise multiply force conversions between MKL-DNN and dense tensors in
every block, which eats the gain (issue 7: timm's seresnet50 gets slower relative to resnet50).
``fold_batchnorm`` keeps the model eager and dense: each ``Conv2d → BatchNorm2d`` pair becomes a
``Conv2d`` with bias (``W' = W·γ/σ``, ``b' = (b − μ)·γ/σ + β``) and the BN an ``Identity``; the SE
blocks keep running the fast path. Pairs are found by running one example through the model:
a BN whose input is exactly the output of a convolution (and the convolution's output goes
nowhere else, which holds for every network in senet) is folded. Pre-activation blocks (BN before
the convolution) keep their BNs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _find_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv name, bn name) pairs where the BN reads the conv's output directly."""
    produced: dict[int, tuple[str, torch.Tensor]] = {}
    calls: dict[str, int] = {}
    pairs: list[tuple[str, str]] = []
    handles = []

    def on_conv(name: str):
        def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> None:
            calls[name] = calls.get(name, 0) + 1
            produced[id(out)] = (name, out)  # keep ``out`` alive so its id stays unique

        return hook

    def on_bn(name: str):
        def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
            calls[name] = calls.get(name, 0) + 1
            src = produced.get(id(inp[0]))
            if src is not None:
                pairs.append((src[0], name))

        return hook

    for name, m in model.named_modules():
        if type(m) is nn.Conv2d:
            handles.append(m.register_forward_hook(on_conv(name)))
        elif type(m) is nn.BatchNorm2d:
            handles.append(m.register_forward_pre_hook(on_bn(name)))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    # a module called more than once (shared) cannot be folded safely
    return [(c, b) for c, b in pairs if calls.get(c) == 1 and calls.get(b) == 1]


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new ``Conv2d`` computing ``bn(conv(x))`` with BN's running statistics (eval mode)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            "BatchNorm without running statistics (track_running_stats=False) cannot be folded"
        )
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1).to(conv.weight.dtype))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = (bias - bn.running_mean) * scale
        if bn.bias is not None:
            new_bias = new_bias + bn.bias
        fused.bias = nn.Parameter(new_bias.to(conv.weight.dtype))
    return fused


def fold_batchnorm(
    model: nn.Module, example: torch.Tensor | None = None, inplace: bool = False
) -> nn.Module:
    """An eval-mode copy of ``model`` with every ``Conv2d → BatchNorm2d`` pair folded (inference only).

    ``example`` is one input batch (default: 1×3×224×224, or 1×3×32×32 if that fails) used to find
    the pairs. The result gives the same outputs as ``model.eval()`` up to float32 rounding; its
    state-dict keys differ (no ``bn*``), so keep the original for saving and training.
    """
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    if example is None:
        example = _default_example(model)
    for conv_name, bn_name in _find_pairs(model, example):
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        _set(model, conv_name, fold_conv_bn(conv, bn))
        _set(model, bn_name, nn.Identity())
    return model


def _early_squeeze_ok(block: nn.Module) -> bool:
    # blocks that can run the rewrite declare ``early_squeeze`` (senet.models.blocks.Bottleneck)
    if not hasattr(block, "early_squeeze") or getattr(block, "integration", None) != "standard":
        return False
    conv = block.conv3
    return (
        block.se.squeeze == "avg"
        and isinstance(block.bn3, nn.Identity)  # BN folded into conv3, so conv3 is all there is
        and type(conv) is nn.Conv2d
        and conv.kernel_size == (1, 1)
        and conv.stride == (1, 1)
        and conv.padding == (0, 0)
        and conv.groups == 1
    )


def squeeze_early(model: nn.Module) -> int:
    """Let every eligible SE bottleneck squeeze its last 1×1 convolution's *input* (in place).

    ``mean_hw(W·h + b) = W·mean_hw(h) + b`` for a 1×1, stride-1, unpadded convolution, so the
    SE descriptor ``z`` is computed from the block's width-channel map, which has a quarter of
    the output's channels, and the pass over the output that the squeeze costs disappears.
    Eligible: ``Bottleneck`` blocks with standard SE integration, average squeeze and BN already
    folded into ``conv3`` (run ``fold_batchnorm`` first). Inference only: the rewritten blocks
    refuse to run in training mode. Returns how many blocks were rewritten.
    """
    count = 0
    for m in model.modules():
        if _early_squeeze_ok(m):
            m.early_squeeze = True
            count += 1
    return count


def optimize_for_inference(model: nn.Module, example: torch.Tensor | None = None) -> nn.Module:
    """An eval-mode copy of ``model`` for inference: ``fold_batchnorm``, then ``squeeze_early``.

    Outputs equal ``model.eval()``'s up to float32 rounding (tests: float64 within 1e-9). The
    copy is for inference only (no ``bn*`` keys, rewritten blocks refuse training mode).
    """
    fast = fold_batchnorm(model, example=example)
    squeeze_early(fast)
    return fast


def _default_example(model: nn.Module) -> torch.Tensor:
    p = next(model.parameters())
    for size in (224, 32):
        x = torch.zeros(1, 3, size, size, dtype=p.dtype, device=p.device)
        try:
            with torch.no_grad():
                model(x)
            return x
        except RuntimeError:
            continue
    raise ValueError(
        "could not run the model on 1×3×224×224 or 1×3×32×32; pass example= (one input batch)"
    )


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)
