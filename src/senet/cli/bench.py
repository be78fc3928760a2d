"""``senet bench``: SE models vs their plain baselines, timm and the plain-loop reference, interleaved."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time SE models against their baselines, timm and a plain loop (interleaved; medians, ratios)",
        description="Inference latency and training throughput of SE models against their plain "
        "baselines, timm's resnet50/seresnet50 and a plain-loop CIFAR reference, interleaved in "
        "one run, in every precision/layout setting (fp32/bf16 × NCHW/channels_last). Prints the "
        "CPU, a table of the ratios the targets refer to (met/missed) and writes a results file "
        "(JSON + Markdown).",
    )
    p.add_argument(
        "--suite",
        default=None,
        help="settings (default: fp32/bf16 × NCHW/CL side by side), quick (the same at tiny "
        "sizes), or issue 7's inference, train224, cifar, full",
    )
    p.add_argument("--quick", action="store_true", help="same as --suite quick")
    p.add_argument(
        "--groups",
        nargs="+",
        default=None,
        metavar="TEXT",
        help="only groups whose name contains TEXT",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="round-robin rounds per group (default: the suite's)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps timed per case per round (default: the suite's)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="CIFAR-10 JPEG folder or .tar.gz for the CIFAR loop (default: $SENET_BENCH_DATA, else "
        "../shared/data/cifar10-jpeg.tar.gz if present, else generated images)",
    )
    p.add_argument(
        "--generated-data",
        action="store_true",
        help="use generated images even if CIFAR-10 is found",
    )
    p.add_argument(
        "--cifar-subset",
        type=int,
        default=10240,
        help="CIFAR training images to load (default 10240)",
    )
    p.add_argument(
        "--workers", type=int, default=2, help="DataLoader workers of the plain loop (default 2)"
    )
    p.add_argument("--no-timm", action="store_true", help="leave out the timm models")
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's; 1 for --quick)"
    )
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time medians and ratios use: wall (default) or process CPU time (steadier on a busy "
        "machine; pair it with --threads 1)",
    )
    p.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="raise glibc's malloc thresholds so freed feature maps are reused instead of "
        "page-faulted in again (speeds up every model alike; recorded in the results)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="results file stem (writes STEM.json and STEM.md); default: none",
    )
    p.add_argument(
        "--update-readme",
        nargs="?",
        const="benchmarks/README.md",
        default=None,
        metavar="PATH",
        help="write the settings table, with the machine named, into PATH between its "
        "'senet bench settings table' markers (default PATH: benchmarks/README.md)",
    )
    p.set_defaults(func=run_bench_cli)


def _data_dir(args: argparse.Namespace) -> str | None:
    if args.generated_data:
        return None
    chosen = args.data_dir or os.environ.get("SENET_BENCH_DATA")
    if chosen:
        if not Path(chosen).exists():
            raise FileNotFoundError(
                f"--data-dir {chosen} does not exist; pass the CIFAR-10 JPEG folder or .tar.gz"
            )
        return chosen
    default = Path("../shared/data/cifar10-jpeg.tar.gz")
    return str(default) if default.exists() else None


def run_bench_cli(args: argparse.Namespace) -> int:
    import torch

    from senet.bench import SuiteOptions, format_table, run_bench, write_results
    from senet.bench.env import load_average
    from senet.bench.report import update_readme
    from senet.bench.runner import stderr_log
    from senet.utils.cpu import cpu_info

    suite = "quick" if args.quick else (args.suite or "settings")
    if args.quick and args.suite not in (None, "quick"):
        raise ValueError(
            f"--quick and --suite {args.suite} contradict each other; pass one of them"
        )
    threads = args.threads if args.threads is not None else (1 if suite == "quick" else None)
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads {threads} must be ≥ 1")
        torch.set_num_threads(threads)
    load = load_average()
    if load and load[0] > (os.cpu_count() or 1):
        stderr_log(
            f"load average {load[0]} exceeds the {os.cpu_count()} cores: other jobs share this machine, "
            "so absolute timings are noisy; ratios from interleaved rounds hold up better "
            "(--threads 1 --clock cpu steadier still)"
        )
    if args.keep_freed_memory:
        from senet.utils.malloc import keep_freed_memory

        if not keep_freed_memory():
            raise ValueError(
                "--keep-freed-memory needs glibc's malloc (Linux); leave the flag out here"
            )
    timm = not args.no_timm
    if timm:
        try:
            import timm as _  # noqa: F401
        except ImportError:
            stderr_log(
                "timm is not installed: leaving out the timm models (pip install timm to include them)"
            )
            timm = False
    options = SuiteOptions(
        data_dir=None if suite == "quick" else _data_dir(args),
        cifar_subset=args.cifar_subset,
        workers=args.workers,
        timm=timm,
    )
    command = "senet " + shlex.join(sys.argv[1:])
    print(f"CPU: {cpu_info().describe()}; torch threads {torch.get_num_threads()}", flush=True)
    result = run_bench(
        suite, options, args.groups, args.rounds, args.steps, stderr_log, command, args.clock
    )
    result["keep_freed_memory"] = bool(args.keep_freed_memory)
    print(format_table(result["cases"], result["comparisons"]))  # type: ignore[arg-type]
    if args.out:
        js, md = write_results(result, args.out)
        print(f"\nwrote {js} and {md}")
    if args.update_readme:
        print(f"wrote the settings table into {update_readme(result, args.update_readme)}")
    return 0
