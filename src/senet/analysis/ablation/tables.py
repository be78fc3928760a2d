"""The paper-style ablation table (Tables 10–16) from a grid's finished runs.

Top-1/top-5 error are mean ± sample std (n − 1) over seeds, from each run's ``summary.json``;
params and MACs (``senet.complexity.count``, conv + FC) are counted on the variant's network at the
recipe's input size; training images/s is what the runs measured.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from senet.analysis.ablation.grid import AblationGrid, Run, format_value
from senet.analysis.ablation.queue import failure
from senet.analysis.plots import plot_error_vs_params
from senet.complexity import count
from senet.models.registry import build_model, get_entry
from senet.train import get_recipe
from senet.utils.io import atomic_write_text


def _mean_std(xs: Sequence[float | None]) -> tuple[float | None, float | None]:
    vals = [x for x in xs if x is not None]
    if not vals:
        return None, None
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in vals) / (len(vals) - 1))


def _run_record(grid: AblationGrid, run: Run, summary: dict) -> dict:
    return {
        "variant": run.variant.name,
        "seed": run.seed,
        "top1_err": summary.get("val_top1_err"),
        "top5_err": summary.get("val_top5_err"),
        "params": summary.get("params"),
        "images_per_s": summary.get("mean_images_per_s"),
        "epochs": summary.get("epochs"),
        "train_time_s": summary.get("train_time_s"),
        "run_dir": str(grid.run_dir(run)),
    }


def collect_results(
    grid: AblationGrid, input_size: int | None = None
) -> tuple[list[dict], list[dict]]:
    """(rows per variant, rows per run) from the finished runs' ``summary.json`` files."""
    per_run, rows = [], []
    for v in grid.variants:
        runs = [Run(v, s) for s in grid.seeds]
        done = []
        failed = 0
        for r in runs:
            path = grid.run_dir(r) / "summary.json"
            if not path.is_file():
                failed += failure(grid.run_dir(r)) is not None
                continue
            done.append(_run_record(grid, r, json.loads(path.read_text())))
        per_run += done
        cfg = get_recipe(grid.recipe, **grid.run_config(runs[0]))
        opts = dict(cfg.model_options)
        entry = get_entry(v.model)
        size = input_size or cfg.input_size or entry.input_size
        model = build_model(v.model, num_classes=cfg.num_classes or entry.num_classes, **opts)
        c = count(model, size, opts.get("in_chans"))
        t1, t1s = _mean_std([d["top1_err"] for d in done])
        t5, t5s = _mean_std([d["top5_err"] for d in done])
        ips, _ = _mean_std([d["images_per_s"] for d in done])
        rows.append(
            {
                "variant": v.name,
                "model": v.model,
                **{k: format_value(x) for k, x in v.options},
                "seeds_done": len(done),
                "seeds": len(runs),
                "seeds_failed": failed,
                "top1_err": t1,
                "top1_err_std": t1s,
                "top5_err": t5,
                "top5_err_std": t5s,
                "params": c.params,
                "macs": c.macs,
                "images_per_s": ips,
            }
        )
    return rows, per_run


def _pm(m: float | None, s: float | None) -> str:
    if m is None:
        return "–"
    return f"{m:.2f} ± {s:.2f}" if s is not None else f"{m:.2f}"


def markdown_table(rows: Sequence[dict], title: str = "") -> str:
    """The paper's table layout: variant, top-1 err, top-5 err, params, MACs, images/s."""
    lines = [f"### {title}", ""] if title else []
    lines += [
        "| variant | model | top-1 err (%) | top-5 err (%) | params | MMACs | train img/s | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ips = "–" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
        failed = f" ({r['seeds_failed']} failed)" if r.get("seeds_failed") else ""
        lines.append(
            f"| {r['variant']} | {r['model']} | {_pm(r['top1_err'], r['top1_err_std'])} | "
            f"{_pm(r['top5_err'], r['top5_err_std'])} | {r['params']:,} | {r['macs'] / 1e6:.3f} | "
            f"{ips} | {r['seeds_done']}/{r['seeds']}{failed} |"
        )
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return buf.getvalue()


def write_table(
    grid: AblationGrid, input_size: int | None = None, plot: bool = True
) -> dict[str, Path]:
    """Write ``table.md``, ``table.csv``, ``runs.csv`` and (for a reduction sweep) ``error_vs_params.png``."""
    rows, per_run = collect_results(grid, input_size)
    out = Path(grid.out)
    title = f"{grid.variants[0].model}: {grid.recipe} recipe, {len(grid.seeds)} seed(s)"
    paths = {
        "table.md": atomic_write_text(out / "table.md", markdown_table(rows, title)),
        "table.csv": atomic_write_text(out / "table.csv", csv_text(rows)),
        "runs.csv": atomic_write_text(out / "runs.csv", csv_text(per_run)),
    }
    sweep = [
        r
        for r in rows
        if r["top1_err"] is not None and ("reduction" in r or r["variant"] == "baseline")
    ]
    if plot and any("reduction" in r for r in sweep):
        paths["error_vs_params.png"] = plot_error_vs_params(
            sweep, out / "error_vs_params.png", f"{title}: top-1 error vs. params"
        )
    return paths
