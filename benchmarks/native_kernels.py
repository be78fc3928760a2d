"""SE training overhead with and without the native kernels: C++ node, Python Function, ATen.

    python benchmarks/native_kernels.py --amp bf16 --rounds 15 --out benchmarks/results/native_kernels_bf16

Times training steps (forward under autocast if bf16, cross-entropy, backward, SGD step) of
ResNet-20 and four runs of SE-ResNet-20 (channels_last unless --layout nchw), interleaved round by
round (order alternating): the SE block as the native C++ autograd node with the block's last
BatchNorm inside it (the default where the kernels are built), the same node with that BatchNorm
run as a module before it (``native.batchnorm_outside``), the Python autograd Function on the same
fused kernels, and ATen's kernels only.
Reports each SE form ÷ ResNet-20 as the median of per-round ratios (wall clock), and writes
STEM.json / STEM.md with the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import senet
from senet.bench.env import environment, load_average, write_report
from senet.layers import fast_ops, native
from senet.utils.malloc import keep_freed_memory

FORMS = {
    "SE-ResNet-20, C++ node": "node",
    "SE-ResNet-20, C++ node, BN outside it": "node_bn_outside",
    "SE-ResNet-20, Python Function + kernels": "function",
    "SE-ResNet-20, ATen only": "aten",
}


def make_step(model: str, batch: int, size: int, amp: bool, cl: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    fmt = torch.channels_last if cl else torch.contiguous_format
    m = senet.create_model(model).train().to(memory_format=fmt)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, m.num_classes, (batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = m(x)
        F.cross_entropy(out.float(), y).backward()
        opt.step()

    return step


@contextlib.contextmanager
def form(name: str, real_node: Callable[..., bool]):
    """Select how SE blocks run: the C++ node (BN inside or outside), the Python Function on the
    kernels, or ATen."""
    fast_ops._native_block = real_node if name.startswith("node") else (lambda *args: False)
    ctx = {"aten": native.disabled, "node_bn_outside": native.batchnorm_outside}
    try:
        with ctx.get(name, contextlib.nullcontext)():
            yield
    finally:
        fast_ops._native_block = real_node


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--amp", choices=("none", "bf16"), default="bf16")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--layout", choices=("cl", "nchw"), default="cl")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=5, help="training steps per case and round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="results stem (STEM.json, STEM.md)")
    args = p.parse_args(argv)
    if not native.available():
        raise SystemExit(f"the native kernels are not available here: {native.status()}")
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    amp = args.amp == "bf16"
    real_node = fast_ops._native_block
    cases = {"ResNet-20": ("cifar_resnet20", "node")}
    cases.update({label: ("cifar_se_resnet20", f) for label, f in FORMS.items()})
    cl = args.layout == "cl"
    steps = {k: make_step(m, args.batch, args.size, amp, cl) for k, (m, _) in cases.items()}

    def run(label: str) -> float:
        with form(cases[label][1], real_node):
            t = time.perf_counter()
            for _ in range(args.steps):
                steps[label]()
            return (time.perf_counter() - t) / args.steps

    load_start = load_average()
    for label in cases:  # warm-up
        run(label)
    times: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(args.rounds):
        for label in cases if r % 2 == 0 else reversed(cases):
            times[label].append(run(label))
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
    plain = times["ResNet-20"]
    rows = [
        {
            "case": label,
            "median ms": round(statistics.median(v) * 1e3, 1),
            "÷ ResNet-20": round(statistics.median(a / b for a, b in zip(v, plain)), 3),
            "rounds ms": [round(t * 1e3, 1) for t in v],
        }
        for label, v in times.items()
    ]
    layout = "channels_last" if cl else "NCHW"
    setting = f"{'bf16' if amp else 'fp32'} {layout}, batch {args.batch}, {args.size} px"
    lines = [
        f"| case ({setting}) | median ms | ÷ ResNet-20 (paired median) |",
        "|---|---|---|",
    ]
    lines += [f"| {r['case']} | {r['median ms']} | {r['÷ ResNet-20']} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.out:
        result = {
            "command": " ".join(["python", *sys.argv]),
            "clock": "wall",
            "threads": args.threads,
            "rounds": args.rounds,
            "steps": args.steps,
            "load_start": load_start,
            "load_end": load_average(),
            "environment": environment(),
            "rows": rows,
        }
        title = f"SE training overhead: native C++ node, Python Function, ATen ({setting})"
        notes = [f"wall clock, {args.threads} threads, {args.rounds} rounds of {args.steps} steps"]
        write_report(args.out, result, title, notes, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
