"""SE overhead of one residual block, fast vs reference path, training step (forward + backward).

Times one block in isolation (process CPU time, one thread, interleaved rounds, medians) so that
the SE ops' cost is not drowned by the rest of the network or by other jobs on a shared machine.
Shapes: SE-ResNet-50 stage 1 at batch 16 (the largest maps) and CIFAR SE-ResNet-20 stage 1 at
batch 128. Writes JSON + Markdown next to ``--out``.

    python benchmarks/block_overhead.py --rounds 7 --out benchmarks/results/block_overhead
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from senet.bench.env import environment, load_average, write_report
from senet.layers import ops
from senet.layers.se import SEConfig
from senet.models.blocks import BasicBlock, Bottleneck

SHAPES = {
    "se_resnet50 stage1 b16 (bottleneck 256ch 56x56)": ((16, 256, 56, 56), Bottleneck, 64),
    "cifar_se_resnet20 stage1 b128 (basic 16ch 32x32)": ((128, 16, 32, 32), BasicBlock, 16),
}


def make_step(
    se: SEConfig | None, layout: str, shape: tuple[int, ...], cls: type, planes: int, amp: str
):
    fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
    block = cls(shape[1], planes, 1, None, se).train().to(memory_format=fmt)
    # the block input in the dtype autocast hands a block (bf16 after the stem), as in a network
    dtype = torch.bfloat16 if amp == "bf16" else torch.float32
    x = torch.randn(shape).to(dtype).contiguous(memory_format=fmt).requires_grad_()

    def step() -> None:
        block.zero_grad(set_to_none=True)
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            y = block(x)
        y.backward(torch.ones_like(y))

    return step


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--amp",
        nargs="+",
        choices=("none", "bf16"),
        default=["none", "bf16"],
        help="precisions to time (bf16: CPU autocast around the forward)",
    )
    p.add_argument(
        "--keep-freed-memory", action="store_true", help="raise glibc malloc thresholds first"
    )
    p.add_argument("--out", default=None, help="results stem (STEM.json, STEM.md)")
    args = p.parse_args(argv)
    if args.keep_freed_memory:
        from senet.utils.malloc import keep_freed_memory

        if not keep_freed_memory():
            raise SystemExit("--keep-freed-memory needs glibc")
    torch.set_num_threads(args.threads)
    load_start, rows = load_average(), []
    settings = [(amp, layout) for amp in args.amp for layout in ("nchw", "cl")]
    for name, (shape, cls, planes) in SHAPES.items():
        for amp, layout in settings:
            cases = {
                "plain": (make_step(None, layout, shape, cls, planes, amp), True),
                "SE fast": (make_step(SEConfig(), layout, shape, cls, planes, amp), True),
                "SE reference": (make_step(SEConfig(), layout, shape, cls, planes, amp), False),
            }
            times: dict[str, list[float]] = {k: [] for k in cases}
            for _, (f, fast) in cases.items():  # warm-up
                ops.set_fast_path(fast)
                f()
            for r in range(args.rounds):
                for k, (f, fast) in cases.items() if r % 2 == 0 else reversed(cases.items()):
                    ops.set_fast_path(fast)
                    t = time.process_time()
                    f()
                    times[k].append(time.process_time() - t)
            ops.set_fast_path(True)
            row = {"block": name, "layout": layout, "amp": amp}
            for k, v in times.items():
                row[f"{k} ms"] = round(statistics.median(v) * 1e3, 1)
                row[f"{k} ÷ plain"] = round(
                    statistics.median(a / b for a, b in zip(v, times["plain"])), 3
                )
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "clock": "process CPU time",
        "threads": args.threads,
        "rounds": args.rounds,
        "keep_freed_memory": args.keep_freed_memory,
        "load_start": load_start,
        "load_end": load_average(),
        "environment": environment(),
        "rows": rows,
    }
    lines = [
        "| block | setting | plain ms | SE fast ms (÷ plain) | SE reference ms (÷ plain) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        setting = (
            f"{'bf16' if r['amp'] == 'bf16' else 'fp32'} {'CL' if r['layout'] == 'cl' else 'NCHW'}"
        )
        lines.append(
            f"| {r['block']} | {setting} | {r['plain ms']} | {r['SE fast ms']} ({r['SE fast ÷ plain']}×) "
            f"| {r['SE reference ms']} ({r['SE reference ÷ plain']}×) |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        title = f"SE block overhead (training step, {result['clock']}, {args.threads} thread(s))"
        notes = [f"glibc malloc thresholds raised: {args.keep_freed_memory}"]
        write_report(args.out, result, title, notes, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
