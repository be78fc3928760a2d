"""Where SE's inference overhead goes: the SE op itself, or everything around it.

    python benchmarks/se_share.py --amp none bf16 --rounds 15 --out benchmarks/results/se_share

Times batch-1 inference (224 px by default) of ResNet-50, SE-ResNet-50, the same SE-ResNet-50 with
its SE node called through ``torch.ops`` instead of the library's direct entry
(``native.via_torch_ops``: what the direct call saves), with its blocks' last BatchNorm run as a
module before the SE node (``native.batchnorm_outside``: what running it inside the node saves),
and with every SE block's op (squeeze, excitation, scale, residual sum, ReLU) replaced by what the
plain block runs there (the BatchNorm, then ``senet.layers.ops.add_relu``): same model object,
same convolutions and Python module structure. Interleaved rounds (order alternating), medians,
paired ratios to the plain network (wall clock) with a 95% percentile-bootstrap interval of each
paired median (rounds resampled). If "SE op removed" ÷ plain is ≈ 1, the whole of SE's overhead is the
SE op's own work (its squeeze, FC weights, scale pass and call); otherwise it is elsewhere.
Writes STEM.json / STEM.md with the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator

import torch

import senet
from senet.bench.env import environment, load_average, write_report
from senet.bench.runner import median_ratio_ci
from senet.layers import native, ops


def _plain_residual(
    se: torch.nn.Module, x: torch.Tensor, shortcut: torch.Tensor | None = None, relu: bool = False
) -> torch.Tensor:
    """What a block without SE computes where the SE op would run."""
    if shortcut is None:
        return torch.relu(x) if relu else x
    return ops.add_relu(x, shortcut) if relu else x + shortcut


def _plain_bn_residual(
    se: torch.nn.Module, bn: torch.nn.Module, y: torch.Tensor, shortcut: torch.Tensor
) -> torch.Tensor:
    return ops.add_relu(bn(y), shortcut)


@contextlib.contextmanager
def se_op_removed(active: bool) -> Iterator[None]:
    real, real_bn = ops.squeeze_excite, ops.bn_squeeze_excite
    if active:
        ops.squeeze_excite, ops.bn_squeeze_excite = _plain_residual, _plain_bn_residual
    try:
        yield
    finally:
        ops.squeeze_excite, ops.bn_squeeze_excite = real, real_bn


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--se-model", default="se_resnet50")
    p.add_argument("--plain-model", default="resnet50")
    p.add_argument("--amp", nargs="+", choices=("none", "bf16"), default=["none", "bf16"])
    p.add_argument("--layout", choices=("cl", "nchw"), default="cl")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--calls", type=int, default=5, help="forward calls per case and round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="results stem (STEM.json, STEM.md)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    fmt = torch.channels_last if args.layout == "cl" else torch.contiguous_format
    models = {
        "plain": senet.create_model(args.plain_model),
        "SE": senet.create_model(args.se_model),
    }
    for m in models.values():
        m.eval().to(memory_format=fmt)
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(memory_format=fmt)
    cases = {  # model, SE op removed, BN outside the node, called through torch.ops
        "plain": ("plain", False, False, False),
        "SE": ("SE", False, False, False),
        "SE, called through torch.ops": ("SE", False, False, True),
        "SE, BN outside the node": ("SE", False, True, False),
        "SE op removed": ("SE", True, False, False),
    }

    def run(label: str, amp: str) -> float:
        name, removed, bn_outside, torch_ops = cases[label]
        bn_ctx = native.batchnorm_outside() if bn_outside else contextlib.nullcontext()
        ops_ctx = native.via_torch_ops() if torch_ops else contextlib.nullcontext()
        with se_op_removed(removed), bn_ctx, ops_ctx:
            t = time.perf_counter()
            for _ in range(args.calls):
                models[name](x)
            return (time.perf_counter() - t) / args.calls

    load_start, rows = load_average(), []
    for amp in args.amp:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=amp == "bf16"):
            for label in cases:  # warm-up
                run(label, amp)
            times: dict[str, list[float]] = {k: [] for k in cases}
            for r in range(args.rounds):
                for label in cases if r % 2 == 0 else reversed(cases):
                    times[label].append(run(label, amp))
                print(f"{amp}: round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for label, v in times.items():
            low, high = median_ratio_ci(v, times["plain"])
            rows.append(
                {
                    "precision": "bf16 autocast" if amp == "bf16" else "fp32",
                    "case": label,
                    "median ms": round(statistics.median(v) * 1e3, 2),
                    "÷ plain (paired median)": round(
                        statistics.median(a / b for a, b in zip(v, times["plain"])), 3
                    ),
                    "95% interval": [round(low, 3), round(high, 3)],
                    "rounds ms": [round(t * 1e3, 2) for t in v],
                }
            )
    header = (
        "| precision | case | median ms | ÷ plain (paired median) | 95% interval (bootstrap) |\n"
        "|---|---|---|---|---|"
    )
    table = "\n".join(
        [header]
        + [
            f"| {r['precision']} | {r['case']} | {r['median ms']} | {r['÷ plain (paired median)']} "
            f"| {r['95% interval'][0]}–{r['95% interval'][1]} |"
            for r in rows
        ]
    )
    print(table)
    if args.out:
        setting = f"{args.layout}, batch {args.batch}, {args.size} px"
        result = {
            "command": " ".join(["python benchmarks/se_share.py", *(argv or sys.argv[1:])]),
            "environment": environment(),
            "load_start": load_start,
            "load_end": load_average(),
            "rows": rows,
        }
        notes = [
            f"{args.se_model} vs {args.plain_model}, {setting}, {args.threads} threads, "
            f"{args.rounds} rounds × {args.calls} calls, wall clock",
            "SE, called through torch.ops: the node called as torch.ops.senet_native.*, not by the "
            "library's direct entry",
            "SE, BN outside the node: each block's last BatchNorm run as a module before the SE node",
            "SE op removed: each SE block's op replaced by the plain residual sum + ReLU",
        ]
        write_report(args.out, result, "Where SE's inference overhead goes", notes, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
