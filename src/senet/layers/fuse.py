"""Inference rewrites that SE does not defeat: BN folding, the squeeze moved before conv3, and
weights stored in bfloat16 once instead of cast by autocast on every call.

``optimize_for_inference`` applies them (``fold_batchnorm``, then ``squeeze_early`` in float32 or
``cast_for_inference`` for ``dtype=torch.bfloat16``), then packs the convolution weights for
oneDNN once (``senet.layers.prepack``).

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
import functools

import torch
from torch import nn

from senet.layers.module_utils import replace_submodule, run_hooked
from senet.layers.prepack import prepack_convolutions
from senet.layers.se import SqueezeExcitation

#: weight dtypes ``cast_for_inference`` accepts (reduced precision with float32-range exponents
#: or half; float32 needs no cast)
CAST_DTYPES = (torch.bfloat16, torch.float16)


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
    run_hooked(model, example, handles)
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
        replace_submodule(model, conv_name, fold_conv_bn(conv, bn))
        replace_submodule(model, bn_name, nn.Identity())
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


def optimize_for_inference(
    model: nn.Module,
    example: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
    prepack: bool = True,
) -> nn.Module:
    """An eval-mode copy of ``model`` for inference: ``fold_batchnorm``, then ``squeeze_early``,
    then (CPU, float32/bf16) ``prepack_convolutions``.

    Outputs equal ``model.eval()``'s up to float32 rounding (tests: float64 within 1e-9). The
    copy is for inference only (no ``bn*`` keys, rewritten blocks refuse training mode, its
    parameters do not require grad).

    ``prepack=True`` (default): convolutions on CPU keep their weights reordered for oneDNN once
    (``senet.layers.prepack``) instead of on every call, as ``torch.compile``'s freezing does;
    at batch 1 this cut SE-ResNet-50's latency by 25–30% here. Their results differ from the
    unpacked convolution's by float rounding only (another summation order).

    ``dtype=torch.bfloat16``: after folding, ``cast_for_inference`` stores the convolution and
    linear weights in bfloat16, so each call skips the float32→bfloat16 weight casts that
    ``torch.autocast`` repeats on every forward (at batch 1 they are a third of SE-ResNet-50's
    time; benchmarks/README.md). The convolutions compute what they compute under autocast; the
    SE excitations stay float32 as on the fast path. The early squeeze is not applied then: it
    would read conv3's weights in float32 on every call (measured slower).
    """
    fast = fold_batchnorm(model, example=example)
    fast.requires_grad_(False)
    if example is None:
        example = _default_example(fast)
    if dtype is None or dtype == torch.float32:
        squeeze_early(fast)
    else:
        cast_for_inference(fast, dtype)
    if prepack:
        prepack_convolutions(fast, example)
    return fast


def cast_for_inference(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Store ``model``'s weights in ``dtype`` for inference, in place; returns ``model``.

    Cast: every parameter and buffer except those of BatchNorm layers (their statistics stay
    float32; CPU kernels take a bfloat16 map with float32 statistics) and of average/max-squeeze
    SE blocks (the excitation runs in float32 on the N×C descriptor, so float32 FC weights cost no
    per-call cast; NoSqueeze blocks are 1×1 convolutions over the map and are cast). A forward
    pre-hook casts floating inputs to ``dtype`` and a forward hook returns a floating output as
    float32, so callers pass and receive float32 tensors as before. The result is what
    ``torch.autocast(dtype=dtype)`` computes, without re-casting the weights on each call. Run it
    on an eval-mode model (``optimize_for_inference(model, dtype=...)`` does both); do not train
    the result.
    """
    if dtype not in CAST_DTYPES:
        names = ", ".join(str(d) for d in CAST_DTYPES)
        raise ValueError(f"cast_for_inference: dtype={dtype} is not supported; choose {names}")
    keep: set[int] = set()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) or (
            isinstance(m, SqueezeExcitation) and m.squeeze != "none"
        ):
            keep.update(id(sub) for sub in m.modules())
    for m in model.modules():
        if id(m) not in keep:
            _cast_own_tensors(m, dtype)
    model.register_forward_pre_hook(functools.partial(_cast_inputs, dtype=dtype))
    model.register_forward_hook(_float_output)
    return model


def _cast_own_tensors(m: nn.Module, dtype: torch.dtype) -> None:
    for key, p in m._parameters.items():
        if p is not None and p.is_floating_point():
            m._parameters[key] = nn.Parameter(p.detach().to(dtype), requires_grad=False)
    for key, b in m._buffers.items():
        if b is not None and b.is_floating_point():
            m._buffers[key] = b.to(dtype)


def _cast_inputs(_m: nn.Module, args: tuple, dtype: torch.dtype) -> tuple:
    return tuple(
        a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args
    )


def _float_output(_m: nn.Module, _args: tuple, out: object) -> object:
    if isinstance(out, torch.Tensor) and out.is_floating_point() and out.dtype != torch.float32:
        return out.float()
    return out


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
