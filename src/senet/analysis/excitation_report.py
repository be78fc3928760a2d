"""The excitation report of ``senet analyze excitations``: statistics, Figs. 6–7, class specificity.

Writes ``excitations.npz`` (``ExcitationStats.save``), ``fig6_class_means.png`` (the chosen blocks'
mean excitation per chosen class and over all classes), ``fig7_<class>.png`` (mean ± std within
each chosen class), ``specificity.png`` and ``specificity.md``/``.json`` (one row per SE block).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from senet.analysis import plots
from senet.analysis.excitations import ExcitationStats
from senet.utils.io import atomic_write_json, atomic_write_text


def specificity_table(stats: ExcitationStats) -> str:
    """Markdown: per block its module, width, mean and std of the gates, between-class variance, η²."""
    lines = [
        "| block | module | channels | mean excitation | std | between-class var | η² |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in stats.blocks:
        s = stats.specificity(b.name)
        lines.append(
            f"| {b.name} | {b.path} | {b.channels} | {s['mean']:.3f} | {s['std']:.3f} | "
            f"{s['between_class_var']:.2e} | {s['eta2']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_excitation_report(
    stats: ExcitationStats,
    out: str | Path,
    blocks: Sequence[str],
    classes: Sequence[str],
    n_channels: int = 50,
    channel_mode: str = "uniform",
    channel_seed: int = 0,
    source: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the statistics, the figures and the specificity table into ``out``; name → path."""
    out = Path(out)
    channels = {
        "n_channels": n_channels,
        "channel_mode": channel_mode,
        "channel_seed": channel_seed,
    }
    paths = {"excitations.npz": stats.save(out / "excitations.npz")}
    paths["fig6_class_means.png"] = plots.plot_class_means(
        stats, out / "fig6_class_means.png", blocks, classes, **channels
    )
    for c in classes:
        name = f"fig7_{re.sub(r'[^A-Za-z0-9._-]', '_', c)}.png"
        paths[name] = plots.plot_class_spread(stats, out / name, blocks, c, **channels)
    paths["specificity.png"] = plots.plot_specificity(stats, out / "specificity.png")
    summary = {
        **(source or {}),
        "classes_shown": list(classes),
        "blocks_shown": list(blocks),
        **channels,
        "images_per_class": stats.counts[stats.names[0]].tolist(),
        "blocks": [
            {"name": b.name, "path": b.path, "channels": b.channels, **stats.specificity(b.name)}
            for b in stats.blocks
        ],
    }
    paths["specificity.json"] = atomic_write_json(out / "specificity.json", summary)
    paths["specificity.md"] = atomic_write_text(out / "specificity.md", specificity_table(stats))
    return paths
