"""How much the whole training loop costs over the bare step: ``senet.train.train`` vs a bare loop.

Issue 12 item 3: "the whole training loop, data included, is not the bottleneck: `senet train
--recipe cifar` on the in-memory path reaches ≥ 90% of the bare step throughput". Both sides train
the same network (default cifar_se_resnet20, batch 128) in the same precision (``choose_precision``:
bf16 autocast + channels_last on CPUs with native bf16, else fp32) with the same optimizer:

- **bare step**: forward, loss, backward, SGD step on one fixed, already normalised batch;
- **train()**: ``senet.train.train`` on in-memory data (generated 32×32 PNGs, decoded once
  into uint8 tensors before the clock starts), i.e. with batching, crop + flip, normalisation,
  per-step LR/seed/loss checks and metric bookkeeping. Timed from the start of its last epoch's
  first step to the end of its last step (a ``TrainLog`` callback), so the first epoch's one-off
  costs and the evaluation are outside the clock, as in the loop's own ``images_per_s``.

Rounds interleave the two (order alternating); each round's ratio is train() ÷ bare, and the
median over rounds is reported with the per-round numbers. ``--clock cpu`` uses process CPU time
(robust to other jobs with ``--threads 1``), ``wall`` the wall clock (as ``senet train`` reports).

    python benchmarks/train_loop_overhead.py --rounds 5 --out benchmarks/results/train_loop_overhead
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from senet.bench.env import environment, load_average
from senet.factory import create_model
from senet.train import TrainLog, get_recipe, train
from senet.utils.cpu import choose_precision, cpu_info
from senet.utils.io import atomic_write_json, atomic_write_text
from senet.utils.malloc import keep_freed_memory


def clock(kind: str) -> float:
    return time.process_time() if kind == "cpu" else time.perf_counter()


def make_data(root: Path, n: int, classes: int = 10) -> Path:
    """``n`` random 32×32 RGB PNGs in an ImageFolder tree (train/ and a small val/)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("val", classes * 4)):
        for i in range(count):
            d = root / split / f"c{i % classes}"
            d.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(d / f"{i:05d}.png")
    return root


def bare_step(model_name: str, batch: int, steps: int, amp: str, cl: bool, kind: str) -> float:
    """Images per second of forward + loss + backward + SGD step on one fixed batch."""
    torch.manual_seed(0)
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = create_model(model_name, num_classes=10).train().to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    crit = torch.nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if amp == "bf16" else None

    def step() -> None:
        if ctx is not None:
            with ctx():
                loss = crit(model(x).float(), y)
        else:
            loss = crit(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = clock(kind)
    for _ in range(steps):
        step()
    return batch * steps / (clock(kind) - t0)


class _LastEpochClock(TrainLog):
    """Times the training phase of the last epoch (first step's start → last step's end)."""

    def __init__(self, kind: str) -> None:
        self.kind, self.t0, self.t1, self.images = kind, 0.0, 0.0, 0.0

    def epoch_start(self, epoch: int, epochs: int, start_step: int, steps: int) -> None:
        self.t0 = clock(self.kind)

    def step(self, epoch: int, step: int, steps: int, sums: torch.Tensor) -> None:
        if step == steps - 1:
            self.t1, self.images = clock(self.kind), float(sums[3])


def loop_rate(data: Path, out: Path, model: str, batch: int, threads: int, kind: str) -> float:
    """Images per second of ``senet.train.train``'s last epoch (2 epochs, in-memory data)."""
    cfg = get_recipe(
        "cifar",
        model=model,
        dataset="imagefolder",
        data_dir=str(data),
        epochs=2,
        batch_size=batch,
        out=str(out),
        force=True,
        tensorboard=False,
        progress=False,
        threads=threads,
    )
    log = _LastEpochClock(kind)
    result = train(cfg, log=log)
    if result.get("status") != "finished":
        raise SystemExit(f"the timed run did not finish ({result.get('status')}); no result")
    return log.images / (log.t1 - log.t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="cifar_se_resnet20")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--images", type=int, default=5120, help="training images (40 steps at b128)")
    p.add_argument("--bare-steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    p.add_argument("--out", help="results stem (STEM.json, STEM.md)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as senet train does by default: both sides run with it
    choice = choose_precision("cpu")
    work = Path(tempfile.mkdtemp(prefix="senet-loop-bench-"))
    data = make_data(work / "data", args.images)
    rows = []
    load_before = load_average()
    for r in range(args.rounds):
        order = ("bare", "loop") if r % 2 == 0 else ("loop", "bare")
        got = {}
        for what in order:
            if what == "bare":
                got[what] = bare_step(
                    args.model,
                    args.batch_size,
                    args.bare_steps,
                    choice.amp,
                    choice.channels_last,
                    args.clock,
                )
            else:
                got[what] = loop_rate(
                    data, work / "run", args.model, args.batch_size, args.threads, args.clock
                )
        got["ratio"] = got["loop"] / got["bare"]
        rows.append(got)
        print(
            f"round {r + 1}: bare {got['bare']:.1f} img/s, train() {got['loop']:.1f} img/s, "
            f"ratio {got['ratio']:.3f}",
            file=sys.stderr,
            flush=True,
        )
    med = {k: statistics.median(row[k] for row in rows) for k in ("bare", "loop", "ratio")}
    report = {
        "what": "senet.train.train (in-memory data, last of 2 epochs, training phase) vs bare step",
        "model": args.model,
        "batch_size": args.batch_size,
        "images_per_epoch": args.images,
        "threads": args.threads,
        "clock": args.clock,
        "precision": choice.describe(),
        "cpu": cpu_info().model,
        "cpu_capability": cpu_info().capability,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "rounds": rows,
        "median": med,
        "environment": environment(),
    }
    print(
        f"median: bare {med['bare']:.1f} img/s, train() {med['loop']:.1f} img/s, "
        f"train()/bare {med['ratio']:.3f}"
    )
    if args.out:
        atomic_write_json(f"{args.out}.json", report)
        atomic_write_text(f"{args.out}.md", _markdown(report))
    return 0


def _markdown(rep: dict) -> str:
    lines = [
        f"# Training-loop overhead: {rep['model']}, batch {rep['batch_size']}",
        "",
        f"CPU: {rep['cpu']} ({rep['cpu_capability']}); {rep['threads']} thread(s); "
        f"{rep['clock']} clock; precision {rep['precision']}; load average before/after "
        f"{rep['load_average_before']} / {rep['load_average_after']}.",
        "",
        "| round | bare step (img/s) | senet.train.train (img/s) | train ÷ bare |",
        "|---|---|---|---|",
    ]
    for i, r in enumerate(rep["rounds"], 1):
        lines.append(f"| {i} | {r['bare']:.1f} | {r['loop']:.1f} | {r['ratio']:.3f} |")
    m = rep["median"]
    lines.append(
        f"| **median** | **{m['bare']:.1f}** | **{m['loop']:.1f}** | **{m['ratio']:.3f}** |"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
