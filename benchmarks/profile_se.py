"""Where SE's time goes: torch.profiler tables (forward + backward) for a model, fast vs reference.

    python benchmarks/profile_se.py se_resnet50 --batch 16 --train --layout cl --path reference
    python benchmarks/profile_se.py se_resnet50 --batch 1 --layout nchw           # inference
    python benchmarks/profile_se.py cifar_se_resnet20 --batch 128 --train --layout cl --amp bf16
    python benchmarks/profile_se.py cifar_se_resnet20 --batch 128 --train --layout cl --path aten

Prints the ops sorted by self CPU time; the SE ops are ``mean``/``sum``/``div`` (squeeze and its
backward), ``mul``/``add``/``clamp_min``/``threshold_backward`` (scale, Axpy, ReLU) and the FCs
(``addmm``/``mm`` on the fast path, ``_slow_conv2d_*`` on the reference path).
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import senet
from senet.layers import native, ops


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=None)
    p.add_argument(
        "--train", action="store_true", help="profile training steps (default: inference)"
    )
    p.add_argument("--layout", choices=("nchw", "cl"), default="nchw")
    p.add_argument(
        "--path",
        choices=("fast", "aten", "reference"),
        default="fast",
        help="aten: the fast path without the native kernels",
    )
    p.add_argument("--amp", choices=("none", "bf16"), default="none", help="bf16: CPU autocast")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rows", type=int, default=25)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ops.set_fast_path(args.path != "reference")
    kernels = native.disabled() if args.path == "aten" else contextlib.nullcontext()
    fmt = torch.channels_last if args.layout == "cl" else torch.contiguous_format
    model = senet.create_model(args.model).to(memory_format=fmt)
    size = args.size or (32 if args.model.startswith("cifar") else 224)
    x = torch.randn(args.batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, model.num_classes, (args.batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def amp():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp == "bf16")

    def step() -> None:
        if args.train:
            opt.zero_grad(set_to_none=True)
            with amp():
                out = model(x)
            F.cross_entropy(out.float(), y).backward()
            opt.step()
        else:
            with torch.inference_mode(), amp():
                model(x)

    model.train(args.train)
    with kernels:
        for _ in range(2):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
