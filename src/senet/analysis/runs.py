"""Compare groups of training runs over seeds: mean ± std, per-seed values, Welch's t-test, curves.

A *run* is a ``senet train`` output directory (``config.json``, ``metrics.jsonl``, and
``summary.json`` once finished). Runs are grouped by what they train — the model, its options and
the precision — so the seeds of one setting form one group; ``compare_groups`` reports each group's
final validation error beside a baseline group's, with Welch's t-test of the difference
(``senet.analysis.significance``), and ``plot_group_curves`` draws every group's mean learning
curve with its seed spread (the paper's Fig. 4 style, over seeds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from senet.analysis.significance import mean_std, welch_t_test
from senet.utils.io import atomic_write


@dataclass
class Run:
    """One training run directory, read."""

    path: Path
    config: dict[str, Any]
    history: list[dict[str, Any]]
    summary: dict[str, Any] | None

    @property
    def finished(self) -> bool:
        return self.summary is not None and self.summary.get("status") == "finished"

    @property
    def model(self) -> str:
        return str(self.config.get("model", self.path.name))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def epochs(self) -> int:
        return int(self.config.get("epochs", len(self.history)))

    def final(self, metric: str = "val_top1_err") -> float | None:
        """``metric`` at the last epoch that has it."""
        values = [r[metric] for r in self.history if r.get(metric) is not None]
        return float(values[-1]) if values else None

    def setting(self) -> str:
        """What the run trains, without the seed: model, its options, precision (the group key)."""
        parts = [self.model]
        for k, v in sorted((self.config.get("model_options") or {}).items()):
            parts.append(f"{k}={v}")
        amp = self.config.get("amp")
        if amp:
            parts.append("fp32" if amp == "none" else str(amp))
        return " ".join(parts)


def read_run(path: str | Path) -> Run:
    """Read a run directory; a missing ``metrics.jsonl`` raises naming the directory."""
    path = Path(path)
    metrics = path / "metrics.jsonl"
    if not metrics.is_file():
        raise FileNotFoundError(f"{path} is not a senet training run (no metrics.jsonl)")
    config = (
        json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    )
    history = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    summary_path = path / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    return Run(path, config, history, summary)


def find_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run in ``paths``: run directories themselves, or folders searched recursively."""
    found: dict[Path, Run] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist; give run directories or folders of runs")
        dirs = (
            [p]
            if (p / "metrics.jsonl").is_file()
            else sorted(m.parent for m in p.rglob("metrics.jsonl"))
        )
        for d in dirs:
            found.setdefault(d.resolve(), read_run(d))
    if not found:
        raise FileNotFoundError(
            f"no training runs (metrics.jsonl) under {', '.join(map(str, paths))}"
        )
    return list(found.values())


@dataclass
class GroupRow:
    """One setting's runs: the final metric over its finished seeds, and the test vs the baseline."""

    setting: str
    runs: list[Run]
    values: list[float] = field(default_factory=list)  # final metric of each finished run
    seeds: list[int] = field(default_factory=list)
    test: dict[str, Any] | None = None  # Welch vs the baseline (None: the baseline, or no runs)
    is_baseline: bool = False

    @property
    def finished(self) -> list[Run]:
        return [r for r in self.runs if r.finished]

    def stats(self) -> tuple[float, float]:
        return mean_std(self.values) if self.values else (math.nan, math.nan)

    def mean_of(self, key: str) -> float | None:
        vals = [r.summary.get(key) for r in self.finished if r.summary and r.summary.get(key)]
        return sum(vals) / len(vals) if vals else None


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs grouped by ``Run.setting()``, seeds sorted, groups in first-seen order."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.setting(), []).append(r)
    return {k: sorted(v, key=lambda r: r.seed) for k, v in groups.items()}


def compare_groups(
    runs: Sequence[Run], baseline: str | None = None, metric: str = "val_top1_err"
) -> list[GroupRow]:
    """Each group's final ``metric`` over its finished runs, tested against ``baseline``.

    ``baseline`` is a setting (or a unique substring of one); default: the first group.
    """
    groups = group_runs(runs)
    rows = [GroupRow(k, v) for k, v in groups.items()]
    for row in rows:
        for r in row.finished:
            value = r.final(metric)
            if value is not None:
                row.values.append(value)
                row.seeds.append(r.seed)
    base = _pick(rows, baseline)
    base.is_baseline = True
    for row in rows:
        if row is not base and row.values and base.values:
            row.test = welch_t_test(row.values, base.values).as_dict()
    rows.sort(key=lambda r: r is not base)  # baseline first
    return rows


def _pick(rows: list[GroupRow], baseline: str | None) -> GroupRow:
    if baseline is None:
        return rows[0]
    exact = [r for r in rows if r.setting == baseline]
    matches = exact or [r for r in rows if baseline in r.setting]
    if len(matches) != 1:
        names = "; ".join(r.setting for r in rows)
        what = "matches no" if not matches else "matches more than one"
        raise ValueError(f"baseline {baseline!r} {what} group; the groups are: {names}")
    return matches[0]


def format_table(rows: Sequence[GroupRow], metric: str = "val_top1_err") -> str:
    """A markdown table: n, mean ± std, per-seed values, Δ vs baseline with Welch's p and 95% CI."""
    lines = [
        f"| setting | finished runs | {metric} mean ± std | per seed | Δ vs baseline [95% CI] | "
        "Welch p | params | img/s | train time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        m, s = row.stats()
        spread = (
            "–" if not row.values else f"{m:.2f}" + (f" ± {s:.2f}" if len(row.values) > 1 else "")
        )
        per_seed = ", ".join(f"s{sd}: {v:.2f}" for sd, v in zip(row.seeds, row.values)) or "–"
        if row.is_baseline:
            delta, p = "baseline", ""
        elif row.test is None:  # no finished runs on one side yet
            delta, p = "–", ""
        else:
            lo, hi = row.test["ci95"]
            ci = "" if math.isnan(lo) else f" [{lo:+.2f}, {hi:+.2f}]"
            delta = f"{row.test['diff']:+.2f}{ci}"
            p = "n/a" if math.isnan(row.test["p_value"]) else f"{row.test['p_value']:.3g}"
        params = row.mean_of("params")
        ips = row.mean_of("mean_images_per_s")
        wall = row.mean_of("train_time_s")
        unfinished = len(row.runs) - len(row.finished)
        n = f"{len(row.finished)}" + (f" (+{unfinished} unfinished)" if unfinished else "")
        lines.append(
            f"| {row.setting} | {n} | {spread} | {per_seed} | {delta} | {p} | "
            f"{_num(params, '{:,.0f}')} | {_num(ips, '{:.0f}')} | {_num(wall and wall / 60, '{:.0f} min')} |"
        )
    return "\n".join(lines)


def _num(value: float | None, fmt: str) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else fmt.format(value)
    )


def as_json(rows: Sequence[GroupRow], metric: str = "val_top1_err") -> dict[str, Any]:
    """The comparison as plain data (comparison.json)."""
    out = []
    for row in rows:
        m, s = row.stats()
        out.append(
            {
                "setting": row.setting,
                "metric": metric,
                "n": len(row.values),
                "mean": m,
                "std": s,
                "values": row.values,
                "seeds": row.seeds,
                "welch_vs_baseline": row.test,
                "runs": [str(r.path) for r in row.runs],
                "unfinished": [str(r.path) for r in row.runs if not r.finished],
                "params": row.mean_of("params"),
                "mean_images_per_s": row.mean_of("mean_images_per_s"),
                "train_time_s": row.mean_of("train_time_s"),
            }
        )
    return {"groups": out}


def plot_group_curves(
    runs: Sequence[Run], path: str | Path, title: str = "", metric: str = "val_top1_err"
) -> Path:
    """Each group's mean ``metric`` per epoch (solid) with min–max over seeds (band) and mean
    training error (dashed), every group on one plot; a zoomed panel shows the last third."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = group_runs(runs)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    for i, (name, members) in enumerate(groups.items()):
        color = f"C{i}"
        for ax in axes:
            for key, style in ((metric, "-"), ("train_top1_err", "--")):
                ep, mean, lo, hi = _per_epoch(members, key)
                if not ep:
                    continue
                label = _curve_label(name, members) if key == metric else None
                ax.plot(ep, mean, style, color=color, lw=1.4, label=label)
                if key == metric and len(members) > 1:
                    ax.fill_between(ep, lo, hi, color=color, alpha=0.18, lw=0)
    epochs = max((len(r.history) for r in runs), default=1)
    axes[1].set_xlim(max(1, epochs * 2 // 3), epochs + 0.5)
    vals = [r[metric] for run in runs for r in run.history[epochs * 2 // 3 - 1 :] if r.get(metric)]
    if vals:
        axes[1].set_ylim(min(vals) - 0.5, max(vals) + 0.5)
    for ax, sub in zip(axes, ("all epochs", "last third (zoom)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel("top-1 error (%)")
        ax.set_title(f"{title} — {sub}" if title else sub, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.text(
        0.01,
        0.01,
        "solid: validation (band: min–max over seeds); dashed: training (augmented); "
        "each epoch averages the runs that reached it",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out = atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return out


def _curve_label(name: str, members: Sequence[Run]) -> str:
    """``name (3 runs)``, or ``name (3 runs, 1 unfinished)``: later epochs average fewer runs."""
    unfinished = sum(1 for r in members if not r.finished)
    runs = f"{len(members)} run" + ("s" if len(members) != 1 else "")
    return f"{name} ({runs}" + (f", {unfinished} unfinished)" if unfinished else ")")


def _per_epoch(
    members: Sequence[Run], key: str
) -> tuple[list[int], list[float], list[float], list[float]]:
    by_epoch: dict[int, list[float]] = {}
    for r in members:
        for rec in r.history:
            if rec.get(key) is not None:
                by_epoch.setdefault(int(rec["epoch"]), []).append(float(rec[key]))
    ep = sorted(by_epoch)
    return (
        ep,
        [sum(by_epoch[e]) / len(by_epoch[e]) for e in ep],
        [min(by_epoch[e]) for e in ep],
        [max(by_epoch[e]) for e in ep],
    )
