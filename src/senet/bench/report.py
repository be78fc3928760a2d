"""Benchmark results: a table for the terminal, and a results file (JSON + Markdown)."""

from __future__ import annotations

import statistics
from pathlib import Path

from senet.bench.runner import Timing, paired_ratio
from senet.bench.suites import Comparison
from senet.utils.io import atomic_write_json, atomic_write_text


def case_rows(timings: list[Timing]) -> list[dict[str, object]]:
    rows = []
    for t in timings:
        c = t.case
        rows.append(
            {
                "group": c.group,
                "label": c.label,
                "task": c.task,
                "model": c.model,
                "batch": c.batch,
                "size": c.size,
                "layout": c.layout,
                "amp": c.amp,
                "setting": c.setting,
                "path": c.path,
                **c.extra,
                "clock": t.clock,
                "median_ms": round(t.median * 1e3, 3),
                "images_per_s": round(t.images_per_s, 2),
                "rounds_ms": [round(s * 1e3, 3) for s in t.seconds],
                "wall_median_ms": round(statistics.median(t.wall) * 1e3, 3),
                "cpu_median_ms": round(statistics.median(t.cpu) * 1e3, 3),
            }
        )
    return rows


def comparison_rows(
    timings: list[Timing], comparisons: list[Comparison]
) -> list[dict[str, object]]:
    """Each comparison's paired ratio and whether it meets its target (skipped if a case is absent)."""
    by_label = {t.case.label: t for t in timings}
    rows = []
    for comp in comparisons:
        num, den = by_label.get(comp.num), by_label.get(comp.den)
        if num is None or den is None:
            continue
        ratio = paired_ratio(den, num) if comp.invert else paired_ratio(num, den)
        row: dict[str, object] = {
            "comparison": comp.name,
            "num": comp.num,
            "den": comp.den,
            "ratio": round(ratio, 3),
            "kind": "throughput" if comp.invert else "time",
        }
        if comp.row is not None:
            row.update(row=comp.row, setting=comp.setting)
        if comp.target is not None:
            met = ratio <= comp.target if comp.sense == "<=" else ratio >= comp.target
            row.update(target=f"{comp.sense} {comp.target}", met=met)
            if not met:
                row["missed_by"] = round(
                    ratio - comp.target if comp.sense == "<=" else comp.target - ratio, 3
                )
        rows.append(row)
    return rows


def format_table(cases: list[dict[str, object]], comps: list[dict[str, object]]) -> str:
    """A plain-text table: per-case medians, then the ratios with their targets."""
    lines = []
    group = None
    for r in cases:
        if r["group"] != group:
            group = r["group"]
            lines.append(f"\n== {group}")
            lines.append(f"  {'case':58s} {'median ms':>10s} {'img/s':>9s}")
        lines.append(f"  {r['label']!s:58s} {r['median_ms']:>10.2f} {r['images_per_s']:>9.2f}")
    if comps:
        lines.append(
            "\n== ratios (paired per round, median; time ratio >1 = slower, throughput ratio >1 = faster)"
        )
        for c in comps:
            status = ""
            if "target" in c:
                status = f"target {c['target']}: " + (
                    "met" if c["met"] else f"MISSED by {c['missed_by']}"
                )
            lines.append(f"  {c['ratio']:>6.3f}× {c['kind']:10s} {c['comparison']}  {status}")
    table = settings_table_text(comps)
    if table:
        lines += [
            "",
            "== settings side by side (time ratios: < 1 = faster; throughput: > 1 = faster)",
            table,
        ]
    return "\n".join(lines).lstrip("\n")


def _settings(comps: list[dict[str, object]]) -> tuple[list[str], list[str], dict]:
    """The settings table's rows, columns and cells from comparisons that name a row/setting."""
    rows: list[str] = []
    cols: list[str] = []
    cells: dict[tuple[str, str], dict[str, object]] = {}
    for c in comps:
        if "row" not in c:
            continue
        r, s = str(c["row"]), str(c["setting"])
        rows += [] if r in rows else [r]
        cols += [] if s in cols else [s]
        cells[(r, s)] = c
    order = ["fp32 NCHW", "fp32 CL", "bf16 NCHW", "bf16 CL"]
    cols.sort(key=lambda s: order.index(s) if s in order else len(order))
    return rows, cols, cells


def _cell(c: dict[str, object] | None, bold: bool = False) -> str:
    if c is None:
        return "—"
    text = f"{c['ratio']:.3f}"
    if "target" in c:
        mark = "met" if c["met"] else "MISSED"
        text = f"**{text}** {mark}" if bold and c["met"] else f"{text} {mark}"
    return text


def _target_of(row: str, cells: dict, cols: list[str]) -> str:
    for s in cols:
        c = cells.get((row, s))
        if c is not None and "target" in c:
            return str(c["target"])
    return ""


def settings_table_text(comps: list[dict[str, object]]) -> str:
    """The ratios the targets refer to, one row per comparison, one column per setting."""
    rows, cols, cells = _settings(comps)
    if not rows:
        return ""
    width = max(len(r) for r in rows) + 2
    lines = [
        f"{'ratio (paired median)':{width}s}{'target':>9s}" + "".join(f"{s:>17s}" for s in cols)
    ]
    for r in rows:
        line = f"{r:{width}s}{_target_of(r, cells, cols):>9s}"
        lines.append(line + "".join(f"{_cell(cells.get((r, s))):>17s}" for s in cols))
    return "\n".join(lines)


def settings_table_markdown(result: dict[str, object]) -> str:
    """The settings table in Markdown, headed by the machine, versions and command."""
    rows, cols, cells = _settings(result["comparisons"])  # type: ignore[arg-type]
    if not rows:
        return ""
    env = result["environment"]  # type: ignore[index]
    out = [
        f"Machine: **{env.get('cpu_summary', env['cpu'])}**, {env['cores']} cores; torch "
        f"{env['torch']}, timm {env['timm']}, senet {env['senet_git']}; "
        f"{result.get('clock', 'wall')} clock, torch threads {env['torch_threads']}; "
        f"started {result['started']}; load average {result['load_start']} → {result['load_end']}.",
        f"Command: `{result['command']}`",
        "",
        "| ratio (paired median over interleaved rounds) | target | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for r in rows:
        vals = " | ".join(_cell(cells.get((r, s))) for s in cols)
        out.append(f"| {r} | {_target_of(r, cells, cols)} | {vals} |")
    medians = _medians_by_setting(result["cases"])  # type: ignore[arg-type]
    if medians:
        out += [
            "",
            "| case (img/s, median) | " + " | ".join(cols) + " |",
            "|---|" + "---|" * len(cols),
        ]
        for (group_kind, label), by in medians.items():
            vals = " | ".join(f"{by[s]:.2f}" if s in by else "—" for s in cols)
            out.append(f"| {group_kind}: {label} | {vals} |")
    return "\n".join(out) + "\n"


def _medians_by_setting(cases: list[dict[str, object]]) -> dict:
    table: dict[tuple[str, str], dict[str, float]] = {}
    for c in cases:
        if "setting" not in c:
            continue
        kind = f"{c['task']} b{c['batch']} {c['size']}px"
        table.setdefault((kind, str(c["label"])), {})[str(c["setting"])] = float(c["images_per_s"])  # type: ignore[arg-type]
    return table if any(len(v) > 1 for v in table.values()) else {}


README_START = "<!-- senet bench settings table: start -->"
README_END = "<!-- senet bench settings table: end -->"


def update_readme(result: dict[str, object], path: str | Path) -> Path:
    """Write the settings table into ``path`` between the README markers (appended if absent)."""
    path = Path(path)
    table = settings_table_markdown(result)
    if not table:
        raise ValueError("this run has no settings table (run --suite settings or --quick)")
    block = f"{README_START}\n{table}{README_END}"
    text = path.read_text() if path.exists() else ""
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        tail = rest.split(README_END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    atomic_write_text(path, text)
    return path


def markdown(result: dict[str, object]) -> str:
    """The results file's Markdown twin: environment, command, ratios, per-case medians."""
    env = result["environment"]
    out = [f"# senet bench — suite `{result['suite']}`", ""]
    out.append(f"- command: `{result['command']}`")
    out.append(f"- started {result['started']}, took {result['seconds']:.0f} s")
    out.append(
        f"- machine: {env.get('cpu_summary', env['cpu'])}, {env['cores']} cores, "
        f"torch threads {env['torch_threads']}"
    )  # type: ignore[index]
    out.append(
        "- versions: "
        + ", ".join(
            f"{k} {env[k]}"
            for k in ("python", "torch", "torchvision", "timm", "senet", "senet_git")
        )  # type: ignore[index]
    )
    out.append(
        f"- load average (1/5/15 min): start {result['load_start']}, end {result['load_end']}"
    )
    out.append(
        f"- glibc malloc thresholds raised (--keep-freed-memory): {result.get('keep_freed_memory', False)}"
    )
    out.append(
        f"- clock for medians and ratios: {result.get('clock', 'wall')} (both are in the JSON)"
    )
    table = settings_table_markdown(result)
    if table:
        out += ["", "## Settings side by side", "", table]
    out += [
        "",
        "## Ratios",
        "",
        "| comparison | ratio | kind | target | result |",
        "|---|---|---|---|---|",
    ]
    for c in result["comparisons"]:  # type: ignore[union-attr]
        res = ("met" if c["met"] else f"missed by {c['missed_by']}") if "target" in c else ""
        out.append(
            f"| {c['comparison']} | {c['ratio']:.3f}× | {c['kind']} | {c.get('target', '')} | {res} |"
        )
    for e in result.get("errors") or []:  # type: ignore[union-attr]
        out.append(f"\n**Group not run:** {e['group']}: {e['error']}")
    out += [
        "",
        "## Cases (median over rounds)",
        "",
        "| group | case | median ms | img/s | wall / cpu median ms | rounds (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["cases"]:  # type: ignore[union-attr]
        rounds = ", ".join(f"{v:.1f}" for v in r["rounds_ms"])
        both = f"{r['wall_median_ms']:.1f} / {r['cpu_median_ms']:.1f}"
        out.append(
            f"| {r['group']} | {r['label']} | {r['median_ms']:.2f} | {r['images_per_s']:.2f} | {both} | {rounds} |"
        )
    return "\n".join(out) + "\n"


def write_results(result: dict[str, object], out: str | Path) -> tuple[Path, Path]:
    """Write ``out``.json and ``out``.md atomically; return both paths."""
    out = Path(out)
    base = out.with_suffix("") if out.suffix in (".json", ".md") else out
    js, md = base.with_suffix(".json"), base.with_suffix(".md")
    atomic_write_json(js, result)
    atomic_write_text(md, markdown(result))
    return js, md
