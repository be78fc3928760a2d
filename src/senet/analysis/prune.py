"""SE-guided structured channel pruning (what the paper's Sec. 7 conclusion suggests, Sec. 8).

Which channels can be cut *structurally* (smaller tensors, not masks) and what ranks them:

- ``target="output"`` — the channels of a residual block's branch output, the ones a standard SE
  block (Fig. 3, integration ``"standard"``) rescales. Its excitation ``s_c`` is exactly the weight
  the block gives channel ``c`` before the sum, so ranking by the mean excitation is direct. The
  stage's width is *not* cut (that would touch every block of the stage and the shortcut): the
  block's last convolution, its BN and the SE block's FCs shrink, and the branch is added back into
  the kept channels of the shortcut (``index_add``), so the block's output keeps its width.
- ``target="inner"`` — a block's local inner width: a basic block's first 3×3 output (conv1 → bn1 →
  conv2's input), or a bottleneck's 3×3 output (conv2 → bn2 → conv3's input; ungrouped only).
  Excitations rank these only when the SE block sits there (integration ``"3x3"``, Table 15).

Rankings: ``"excitation"`` (lowest mean excitation over the recorded data goes first),
``"l1"`` (lowest L1 norm of the producing filters, Li et al. 2017 — the magnitude baseline) and
``"random"``. The same ``amount`` (fraction of each group's channels) gives the same widths, hence
the same params and MACs, for every ranking, so accuracies compare at an equal budget.

A pruned model no longer matches a registry spec. It is saved as safetensors (tensors only, no
pickles) whose metadata holds the base model (``"senet"``, as ``senet.interop.weights_file``) and the
plan (``"senet_pruning"``: target and kept channel indices per block); ``load_pruned`` rebuilds
the base network, applies the plan and loads the weights.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from senet.analysis.excitations import ExcitationStats, paper_block_name
from senet.complexity import count
from senet.factory import create_model
from senet.layers.se import SqueezeExcitation
from senet.models.blocks import BasicBlock, Bottleneck
from senet.train.engine import StepRunner, train_one_epoch
from senet.train.engine import evaluate as train_evaluate
from senet.utils.io import atomic_write

Target = Literal["output", "inner"]
Ranking = Literal["excitation", "l1", "random"]
PRUNING_KEY = "senet_pruning"
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


# --------------------------------------------------------------------------------------------
# Blocks whose branch output was pruned: the branch adds into the kept shortcut channels.
# --------------------------------------------------------------------------------------------
class OutputPrunedBasicBlock(BasicBlock):
    """A ``BasicBlock`` whose conv2/bn2/SE keep ``kept_out`` of the block's output channels."""

    kept_out: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out * self.se.excitation(out)
        return F.relu(shortcut.index_add(1, self.kept_out, out))


class OutputPrunedBottleneck(Bottleneck):
    """A ``Bottleneck`` whose conv3/bn3/SE keep ``kept_out`` of the block's output channels."""

    kept_out: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = out * self.se.excitation(out)
        return F.relu(shortcut.index_add(1, self.kept_out, out))


_OUTPUT_PRUNED = {BasicBlock: OutputPrunedBasicBlock, Bottleneck: OutputPrunedBottleneck}


@dataclass(frozen=True)
class PrunableGroup:
    """One set of channels that can be cut together inside one residual block."""

    block: str  # module path of the residual block, e.g. "layer2.1"
    target: Target
    channels: int
    producer: str  # the convolution whose output channels these are
    se: str | None  # module path of the SE block that gates exactly these channels, if any

    @property
    def name(self) -> str:
        return paper_block_name(f"{self.block}.se")


def _layers(block: nn.Module, target: Target) -> tuple[str, str, str | None]:
    """(producer conv, its BN, consumer conv or None) for a group."""
    if target == "output":
        return ("conv2", "bn2", None) if type(block) is BasicBlock else ("conv3", "bn3", None)
    return ("conv1", "bn1", "conv2") if type(block) is BasicBlock else ("conv2", "bn2", "conv3")


def prunable_groups(model: nn.Module, target: Target = "output") -> list[PrunableGroup]:
    """The groups of ``model`` that ``target`` can cut (see the module docstring)."""
    if target not in ("output", "inner"):
        raise ValueError(f"target={target!r} is not supported; choose output or inner")
    groups = []
    for path, block in model.named_modules():
        if type(block) not in (BasicBlock, Bottleneck):
            continue  # pre-activation blocks and already-pruned blocks are not handled
        se_point = getattr(block, "integration", None)
        if target == "output":
            if se_point != "standard":
                continue  # without a standard SE the branch output has no local gate to shrink with it
            se = f"{path}.se"
        else:
            if type(block) is Bottleneck and block.conv2.groups != 1:
                continue  # grouped 3×3 (ResNeXt): cutting channels would unbalance the groups
            se = f"{path}.se" if se_point == "3x3" else None
        producer, _, _ = _layers(block, target)
        conv = getattr(block, producer)
        groups.append(PrunableGroup(path, target, conv.out_channels, f"{path}.{producer}", se))
    if not groups:
        need = (
            "SE blocks at integration 'standard'"
            if target == "output"
            else "basic or ungrouped bottleneck blocks"
        )
        raise ValueError(f"nothing to prune with target={target!r}: the model has no {need}")
    return groups


def channel_scores(
    model: nn.Module,
    groups: list[PrunableGroup],
    ranking: Ranking,
    stats: ExcitationStats | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A score per channel of each group; the lowest scores are pruned first."""
    scores: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(seed)
    by_path = {b.path: b.name for b in stats.blocks} if stats is not None else {}
    for g in groups:
        if ranking == "l1":
            w = model.get_submodule(g.producer).weight.detach()
            scores[g.block] = w.abs().sum((1, 2, 3)).double().cpu().numpy()
        elif ranking == "random":
            scores[g.block] = rng.random(g.channels)
        elif ranking == "excitation":
            if stats is None:
                raise ValueError(
                    "ranking='excitation' needs excitation statistics (senet analyze excitations)"
                )
            if g.se is None or g.se not in by_path:
                raise ValueError(
                    f"block {g.block} has no recorded SE block gating its {g.target} channels; "
                    "record the excitations of this model, or use target='inner' only with "
                    "integration='3x3' SE blocks"
                )
            mean = stats.overall_mean(by_path[g.se])
            if mean.shape[0] != g.channels:
                raise ValueError(
                    f"statistics of {g.se} have {mean.shape[0]} channels; the model has {g.channels}"
                )
            scores[g.block] = mean
        else:
            raise ValueError(
                f"ranking={ranking!r} is not supported; choose excitation, l1 or random"
            )
    return scores


def make_plan(
    groups: list[PrunableGroup], scores: Mapping[str, np.ndarray], amount: float
) -> dict[str, Any]:
    """Keep the highest-scoring ``1 - amount`` of each group's channels (at least one)."""
    if not 0.0 <= amount < 1.0:
        raise ValueError(
            f"amount={amount} must be in [0, 1): the fraction of each group's channels to remove"
        )
    keep: dict[str, list[int]] = {}
    for g in groups:
        n_remove = min(round(amount * g.channels), g.channels - 1)
        order = np.argsort(scores[g.block], kind="stable")  # ascending: least important first
        keep[g.block] = sorted(int(i) for i in order[n_remove:])
    target = groups[0].target if groups else "output"
    return {"target": target, "amount": amount, "keep": keep}


# --------------------------------------------------------------------------------------------
# Structural surgery
# --------------------------------------------------------------------------------------------
def _slice_conv(
    conv: nn.Conv2d, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None
) -> nn.Conv2d:
    w = conv.weight.detach()
    b = conv.bias.detach() if conv.bias is not None else None
    if out_idx is not None:
        w = w[out_idx]
        b = b[out_idx] if b is not None else None
    if in_idx is not None:
        w = w[:, in_idx]
    new = nn.Conv2d(
        w.shape[1] * conv.groups,
        w.shape[0],
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=b is not None,
    )
    new.weight = nn.Parameter(w.clone())
    if b is not None:
        new.bias = nn.Parameter(b.clone())
    return new.to(conv.weight.device)


def _slice_bn(bn: nn.BatchNorm2d, idx: torch.Tensor) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(idx), bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight[idx])
            new.bias.copy_(bn.bias[idx])
        if bn.track_running_stats:
            new.running_mean.copy_(bn.running_mean[idx])
            new.running_var.copy_(bn.running_var[idx])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    new.train(bn.training)  # a fresh module is in training mode; keep the model's mode
    return new.to(bn.running_mean.device if bn.track_running_stats else "cpu")


def _slice_se(se: SqueezeExcitation, idx: torch.Tensor) -> None:
    se.fc1 = _slice_conv(se.fc1, None, idx)
    se.fc2 = _slice_conv(se.fc2, idx, None)
    se.channels = len(idx)


def apply_plan(model: nn.Module, plan: Mapping[str, Any]) -> nn.Module:
    """Cut the channels ``plan`` does not keep, in place; returns ``model`` (now smaller)."""
    target = plan["target"]
    for path, kept in plan["keep"].items():
        block = model.get_submodule(path)
        if type(block) not in (BasicBlock, Bottleneck):
            raise ValueError(
                f"{path} is a {type(block).__name__}; only unpruned basic/bottleneck blocks can be cut"
            )
        producer, bn, consumer = _layers(block, target)
        idx = torch.as_tensor(kept, dtype=torch.long)
        conv = getattr(block, producer)
        if len(idx) == 0 or int(idx.max()) >= conv.out_channels or len(set(kept)) != len(kept):
            raise ValueError(f"plan for {path} keeps invalid channels (of {conv.out_channels})")
        setattr(block, producer, _slice_conv(conv, idx, None))
        setattr(block, bn, _slice_bn(getattr(block, bn), idx))
        if consumer is not None:
            setattr(block, consumer, _slice_conv(getattr(block, consumer), None, idx))
        gated = (target == "output" and block.integration == "standard") or (
            target == "inner" and block.integration == "3x3"
        )
        if gated:
            _slice_se(block.se, idx)
        if target == "output":
            block.__class__ = _OUTPUT_PRUNED[
                type(block)
            ]  # same modules, branch adds into kept channels
            block.register_buffer("kept_out", idx.to(conv.weight.device))
    model.pruning_plan = dict(plan)  # type: ignore[assignment]
    return model


def zero_removed_channels(model: nn.Module, plan: Mapping[str, Any]) -> nn.Module:
    """Zero (in place) the producer filters and BN affine of the channels ``plan`` removes.

    The unpruned model then computes what the pruned one does: the structural check of ``apply_plan``.
    """
    with torch.no_grad():
        for path, kept in plan["keep"].items():
            block = model.get_submodule(path)
            producer, bn, _ = _layers(block, plan["target"])
            n = getattr(block, producer).out_channels
            removed = torch.as_tensor(sorted(set(range(n)) - set(kept)), dtype=torch.long)
            getattr(block, producer).weight[removed] = 0
            getattr(block, bn).weight[removed] = 0
            getattr(block, bn).bias[removed] = 0
    return model


def layer_widths(model: nn.Module) -> dict[str, list[int]]:
    """``{conv path: [in, out]}`` of every convolution: the pruned architecture, human-readable."""
    return {
        p: [m.in_channels, m.out_channels]
        for p, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    }


def prune_model(
    model: nn.Module,
    amount: float,
    ranking: Ranking = "excitation",
    target: Target = "output",
    stats: ExcitationStats | None = None,
    seed: int = 0,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rank, plan and cut ``model`` in place; returns the model and its plan (see module docstring)."""
    groups = prunable_groups(model, target)
    plan = make_plan(groups, channel_scores(model, groups, ranking, stats, seed), amount)
    plan["ranking"] = ranking
    return apply_plan(model, plan), plan


def amount_for_budget(
    model: nn.Module,
    fraction: float,
    metric: Literal["params", "macs"] = "params",
    target: Target = "output",
    input_size: int = 32,
) -> tuple[float, float]:
    """The smallest per-group ``amount`` whose cut removes at least ``fraction`` of params or MACs.

    Returns ``(amount, achieved_fraction)``; widths are whole channels, so the achieved fraction
    is the first step at or above the request (or the most this target can remove).
    """
    if metric not in ("params", "macs"):
        raise ValueError(f"metric={metric!r} is not supported; choose params or macs")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"budget fraction {fraction} must be in (0, 1)")

    groups = prunable_groups(model, target)
    scores = {
        g.block: np.arange(g.channels, dtype=float) for g in groups
    }  # widths only matter here

    def measure(m: nn.Module) -> int:
        return (
            sum(p.numel() for p in m.parameters())
            if metric == "params"
            else complexity(m, input_size)["macs"]
        )

    base = measure(model)

    def reduction(amount: float) -> float:
        return (
            1.0
            - measure(apply_plan(copy.deepcopy(model), make_plan(groups, scores, amount))) / base
        )

    lo, hi = 0.0, 0.99
    best = reduction(hi)
    if best < fraction:
        raise ValueError(
            f"target={target!r} can remove at most {100 * best:.1f}% of the {metric}; "
            f"ask for less than {fraction:.2f}, or use the other target"
        )
    for _ in range(14):
        mid = (lo + hi) / 2
        r = reduction(mid)
        if r >= fraction:
            hi, best = mid, r
        else:
            lo = mid
    return hi, best


# --------------------------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------------------------
def save_pruned(model: nn.Module, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Write a pruned model as safetensors with its base-model metadata and pruning plan (atomic)."""
    plan = getattr(model, "pruning_plan", None)
    name = getattr(model, "model_name", None)
    if plan is None or name is None:
        raise ValueError(
            "save_pruned needs a model built with senet.create_model and pruned with apply_plan"
        )
    base = getattr(model, "checkpoint_metadata", {}) or {}
    meta = {
        **{
            k: v for k, v in base.items() if k in ("mean", "std", "input_size", "classes", "source")
        },
        "model": name,
        "options": dict(getattr(model, "build_options", {})),
        "num_classes": getattr(model, "num_classes", None),
        **dict(extra or {}),
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    blobs = {
        "senet": json.dumps(meta, default=list),
        PRUNING_KEY: json.dumps({**plan, "widths": layer_widths(model)}),
    }
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata=blobs))


def is_pruned_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    with safe_open(str(path), framework="pt") as f:
        return PRUNING_KEY in (f.metadata() or {})


def load_pruned(path: str | Path) -> nn.Module:
    """Rebuild a model saved by ``save_pruned``: base network from the registry, plan, weights."""

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pruned checkpoint {path} does not exist")
    with safe_open(str(path), framework="pt") as f:
        md = f.metadata() or {}
        if PRUNING_KEY not in md:
            raise ValueError(
                f"{path} is not a pruned checkpoint; load it with senet.interop.weights_file.load_model"
            )
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta, plan = json.loads(md["senet"]), json.loads(md[PRUNING_KEY])
    model = create_model(
        meta["model"], num_classes=meta.get("num_classes"), **meta.get("options", {})
    )
    apply_plan(model, plan)
    model.load_state_dict(state, strict=True)
    model.checkpoint_metadata = meta  # type: ignore[assignment]
    return model


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------
def complexity(model: nn.Module, input_size: int) -> dict[str, int]:
    """Params and conv/FC MACs per image (``senet.complexity.count``)."""

    c = count(model, input_size)
    return {"params": c.params, "macs": c.macs}


def evaluate(model: nn.Module, batches: Batches, device: str = "cpu") -> dict[str, float]:
    """Top-1/top-5 accuracy (%) and the number of images (``senet.train.evaluate``, as accuracies)."""
    model.to(device)
    res = train_evaluate(model, batches, device=device)
    return {"top1": 100.0 - res["top1_err"], "top5": 100.0 - res["top5_err"], "images": res["n"]}


def finetune(
    model: nn.Module,
    batches: Batches,
    epochs: int = 1,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    device: str = "cpu",
    progress: bool | None = None,
) -> nn.Module:
    """A short SGD fine-tune of a pruned model (cosine lr over all steps), with the training
    engine's ``train_one_epoch``; ``batches`` is re-iterable and sized (a list, a DataLoader)."""

    model.train().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    per_epoch = len(batches)  # type: ignore[arg-type]
    total = max(1, epochs * per_epoch)

    def cosine(epoch: int, step: int) -> float:
        return 0.5 * lr * (1 + math.cos(math.pi * (epoch * per_epoch + step) / total))

    runner = StepRunner(model, opt, cosine, device=torch.device(device))
    disable = None if progress is None else not progress
    for epoch in tqdm(range(epochs), desc="fine-tune", unit="epoch", disable=disable):
        train_one_epoch(runner, batches, epoch, epochs=epochs)
    return model.eval()
