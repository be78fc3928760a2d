"""A pruning study: each ranking at the same budget, before/after/fine-tuned accuracy, params, MACs.

``compare_rankings`` is what ``senet prune`` runs: it answers "do the excitations carry
information?" by pruning the same network with the excitation ranking and with the L1-norm (and
random) baselines at identical widths.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.analysis.excitations import ExcitationStats
from senet.analysis.prune import (
    Ranking,
    Target,
    complexity,
    evaluate,
    finetune,
    prune_model,
    save_pruned,
)
from senet.utils.io import atomic_write_json, atomic_write_text

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def compare_rankings(
    model: nn.Module,
    rankings: Sequence[Ranking],
    amount: float,
    target: Target,
    eval_batches: Batches,
    input_size: int,
    stats: ExcitationStats | None = None,
    train_batches: Callable[[], Batches] | None = None,
    finetune_epochs: int = 0,
    finetune_lr: float = 0.01,
    out: str | Path | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Prune a copy of ``model`` per ranking; report params, MACs, top-1/top-5 before and after."""
    base = complexity(model, input_size)
    before = evaluate(model, eval_batches)
    log(
        f"unpruned: {base['params']:,} params, {base['macs'] / 1e6:.2f} MMACs, top-1 {before['top1']:.2f}%"
    )
    report: dict[str, Any] = {
        "amount": amount,
        "target": target,
        "input_size": input_size,
        "finetune_epochs": finetune_epochs,
        "finetune_lr": finetune_lr,
        "unpruned": {**base, **before},
        "pruned": {},
    }
    for ranking in rankings:
        torch.manual_seed(seed)
        pruned, _ = prune_model(copy.deepcopy(model), amount, ranking, target, stats, seed)
        c = complexity(pruned, input_size)
        res: dict[str, Any] = {**c, "after": evaluate(pruned, eval_batches)}
        res["params_reduction"] = 1 - c["params"] / base["params"]
        res["macs_reduction"] = 1 - c["macs"] / base["macs"]
        if finetune_epochs > 0:
            if train_batches is None:
                raise ValueError("fine-tuning needs training data (--data-dir with a train split)")
            finetune(pruned, train_batches(), finetune_epochs, finetune_lr)
            res["finetuned"] = evaluate(pruned, eval_batches)
        if out is not None:
            source = {"source": f"senet prune ({ranking}, amount {amount})"}
            path = save_pruned(pruned, Path(out) / f"pruned_{ranking}.safetensors", source)
            res["checkpoint"] = str(path)
        report["pruned"][ranking] = res
        ft = f", fine-tuned {res['finetuned']['top1']:.2f}%" if "finetuned" in res else ""
        log(
            f"{ranking:>10}: {c['params']:,} params (−{100 * res['params_reduction']:.1f}%), "
            f"{c['macs'] / 1e6:.2f} MMACs (−{100 * res['macs_reduction']:.1f}%), "
            f"top-1 {res['after']['top1']:.2f}%{ft}"
        )
    if out is not None:
        atomic_write_json(Path(out) / "prune_report.json", report)
        atomic_write_text(Path(out) / "prune_report.md", markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    """The study as a Markdown table (accuracies in %, counts per image)."""
    u = report["unpruned"]
    ft = report["finetune_epochs"] > 0
    head = "| ranking | params | MMACs | top-1 acc | top-5 acc |" + (
        " top-1 after fine-tune | top-5 after fine-tune |" if ft else ""
    )
    sep = "|---" * (7 if ft else 5) + "|"
    rows = [
        head,
        sep,
        f"| unpruned | {u['params']:,} | {u['macs'] / 1e6:.2f} | {u['top1']:.2f} | {u['top5']:.2f} |"
        + (" – | – |" if ft else ""),
    ]
    for name, r in report["pruned"].items():
        line = (
            f"| {name} | {r['params']:,} (−{100 * r['params_reduction']:.1f}%) | {r['macs'] / 1e6:.2f} "
            f"(−{100 * r['macs_reduction']:.1f}%) | {r['after']['top1']:.2f} | {r['after']['top5']:.2f} |"
        )
        if ft:
            line += f" {r['finetuned']['top1']:.2f} | {r['finetuned']['top5']:.2f} |"
        rows.append(line)
    title = (
        f"Pruning {100 * report['amount']:.0f}% of each group's channels (target: {report['target']}), "
        f"{u['images']} evaluation images"
        + (f", fine-tune {report['finetune_epochs']} epoch(s)" if ft else "")
    )
    return f"### {title}\n\n" + "\n".join(rows) + "\n"
