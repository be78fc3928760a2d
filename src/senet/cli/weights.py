"""``senet weights``: the registered pretrained weights (model, tag, source, top-1, cached or not)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "weights",
        help="list pretrained weights by name (and download them for offline use)",
        description="List the registered pretrained weights: create_model(NAME, pretrained=TAG) "
        "and `senet predict MODEL.TAG` load them (downloaded once into $SENET_HOME, default "
        "~/.cache/senet, and hash-checked). The default tag of each model is marked '*'.",
    )
    p.add_argument(
        "pattern",
        nargs="?",
        help="model or model.tag; a shell glob ('se_*', '*.original') or a substring",
    )
    p.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    p.add_argument(
        "--download", action="store_true", help="download the matching weights into the cache now"
    )
    p.set_defaults(func=_weights)


def _weights(args: argparse.Namespace) -> int:
    from senet.weights import cached_file, default_tag, fetch, list_weights, senet_home

    pattern = args.pattern
    if pattern and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    entries = list_weights(pattern)
    if not entries:
        raise ValueError(
            f"no registered weights match {args.pattern!r}; `senet weights` lists all "
            f"{len(list_weights())}"
        )
    if args.download:
        for e in entries:
            print(f"{e.name}: {fetch(e)}")
        return 0
    rows = []
    for e in entries:
        cached = cached_file(e)
        p = e.preprocessing
        rows.append(
            {
                "model": e.model,
                "tag": e.tag,
                "default": default_tag(e.model) == e.tag,
                "source": e.source,
                "top1": e.top1,
                "input_size": p.input_size,
                "resize": p.resize_size,
                "interpolation": p.interpolation,
                "hash": e.hash_kind,
                "sha256": e.sha256,
                "url": e.url,
                "cached": str(cached) if cached else None,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("model", "tag", "source", "top-1", "eval", "hash", "cached")
    table = [
        (
            r["model"],
            r["tag"] + (" *" if r["default"] else ""),
            r["source"],
            f"{r['top1']:.2f}" if r["top1"] is not None else "-",
            f"{r['resize']}→{r['input_size']} {r['interpolation']}",
            r["hash"],
            "yes" if r["cached"] else "-",
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in (header, *table)) for i in range(len(header))]
    for row in (header, *table):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    print(f"\n{len(rows)} entries; cache: {senet_home() / 'weights'}")
    return 0
