"""``senet compare``: groups of training runs over seeds, side by side, with a test of significance."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare training runs over seeds: mean ± std, Welch's t-test, learning curves",
        description="Group `senet train` runs by setting (model, model options, precision), report "
        "each group's final validation error over its finished seeds beside a baseline group's, with "
        "Welch's t-test of the difference and its 95%% confidence interval, and plot every group's "
        "mean learning curve with its spread over seeds.",
    )
    p.add_argument("runs", nargs="+", help="run directories, or folders searched for runs")
    p.add_argument(
        "--baseline",
        help="the setting to compare against (or a unique part of it); default: the first",
    )
    p.add_argument(
        "--metric",
        default="val_top1_err",
        choices=["val_top1_err", "val_top5_err", "val_loss"],
        help="the final-epoch number compared (default: %(default)s)",
    )
    p.add_argument(
        "--out", type=Path, help="write comparison.md, comparison.json and curves.png here"
    )
    p.add_argument("--title", default="", help="plot title")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    from senet.analysis.runs import (
        as_json,
        compare_groups,
        find_runs,
        format_table,
        plot_group_curves,
    )
    from senet.utils.io import atomic_write_json, atomic_write_text

    runs = find_runs(args.runs)
    rows = compare_groups(runs, args.baseline, args.metric)
    table = format_table(rows, args.metric)
    data = as_json(rows, args.metric)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "comparison.md", table + "\n")
        atomic_write_json(args.out / "comparison.json", data)
        try:
            plot_group_curves(runs, args.out / "curves.png", args.title, args.metric)
        except ImportError:
            print(
                "senet compare: matplotlib is not installed; no curves.png (pip install 'senet[plots]')"
            )
    print(json.dumps(data, indent=2) if args.json else table)
    return 0
