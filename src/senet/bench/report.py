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
        rows.append({
            "group": c.group, "label": c.label, "task": c.task, "model": c.model, "batch": c.batch,
            "size": c.size, "layout": c.layout, "path": c.path, **c.extra,
            "clock": t.clock, "median_ms": round(t.median * 1e3, 3), "images_per_s": round(t.images_per_s, 2),
            "rounds_ms": [round(s * 1e3, 3) for s in t.seconds],
            "wall_median_ms": round(statistics.median(t.wall) * 1e3, 3),
            "cpu_median_ms": round(statistics.median(t.cpu) * 1e3, 3),
        })  # fmt: skip
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
        row: dict[str, object] = {"comparison": comp.name, "num": comp.num, "den": comp.den,
                                  "ratio": round(ratio, 3), "kind": "throughput" if comp.invert else "time"}  # fmt: skip
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
    return "\n".join(lines).lstrip("\n")


def markdown(result: dict[str, object]) -> str:
    """The results file's Markdown twin: environment, command, ratios, per-case medians."""
    env = result["environment"]
    out = [f"# senet bench — suite `{result['suite']}`", ""]
    out.append(f"- command: `{result['command']}`")
    out.append(f"- started {result['started']}, took {result['seconds']:.0f} s")
    out.append(
        f"- machine: {env['cpu']}, {env['cores']} cores, torch threads {env['torch_threads']}"
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
