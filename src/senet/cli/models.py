"""``senet models`` (the model zoo and its table) and ``senet complexity`` (params/MACs vs the paper)."""

from __future__ import annotations

import argparse
import json

from senet.cli._options import add_model_options_argument, parse_model_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models", help="list the networks (with --table: params, MACs, paper values)"
    )
    p.add_argument("pattern", nargs="?", help="shell glob, e.g. 'se_*' or '*resnext*'")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--se", dest="se", action="store_true", default=None, help="SE networks only")
    kind.add_argument("--plain", dest="se", action="store_false", help="plain baselines only")
    p.add_argument(
        "--table", action="store_true", help="Markdown table of params, MACs and paper values"
    )
    p.set_defaults(func=run_models)

    c = subparsers.add_parser(
        "complexity", help="params and MACs of one network beside the paper's"
    )
    c.add_argument("model", help="model name (see `senet models`)")
    c.add_argument(
        "--res", type=int, default=None, help="input resolution (default: the model's own)"
    )
    c.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_model_options_argument(c)
    c.set_defaults(func=run_complexity)


def run_models(args: argparse.Namespace) -> int:
    from senet.models.registry import list_models

    names = list_models(args.pattern, se=args.se)
    if not names:
        raise ValueError(f"no model matches {args.pattern!r}; `senet models` lists them all")
    if not args.table:
        print("\n".join(names))
        return 0
    from senet.reporting import model_table

    print(model_table(names, progress=True))
    return 0


def run_complexity(args: argparse.Namespace) -> int:
    from senet.complexity import describe

    row = describe(args.model, args.res, **parse_model_options(args.model_options))
    if args.json:
        print(json.dumps(row, indent=2))
        return 0
    paper = row["paper_gflops"]
    lines = [
        f"model                      {row['model']} @ {row['input_size']}×{row['input_size']}",
        f"parameters                 {row['params']:,}",
        f"conv + FC MACs             {row['gmacs_conv_fc']:.3f} G",
        f"SE pooling + scaling ops   {row['gops_se_elementwise']:.4f} G (one op per element, as the paper counts)",
        f"total                      {row['gmacs_total']:.3f} G"
        + (f"   (paper: {paper:.4g} GFLOPs)" if paper else "   (paper: no value at this size)"),
    ]
    if row["se_params"]:
        lines += [
            f"SE parameters              {row['se_params']:,}",
            f"paper formula (2/r)ΣN·C²   {row['paper_formula_extra_params']:,} (weights only)",
        ]
    if "extra_params_vs_baseline" in row:
        lines.append(
            f"vs {row['baseline']:<22} +{row['extra_params_vs_baseline']:,} params (+{row['extra_params_pct']}%)"
        )
    print("\n".join(lines))
    return 0
