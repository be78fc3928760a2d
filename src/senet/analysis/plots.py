"""Figures of the paper's excitation analysis (Figs. 6–7) and of the ablation tables (Sec. 6).

Every function writes one PNG with matplotlib's non-interactive backend and returns its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from senet.analysis.excitations import ExcitationStats
from senet.utils.io import atomic_write


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - matplotlib is the "plots" extra
        raise RuntimeError("plots need matplotlib: pip install 'senet[plots]'") from err
    return plt


def _save(fig, path: str | Path) -> Path:
    plt = _plt()
    out = atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return out


def channel_indices(channels: int, n: int, mode: str = "uniform", seed: int = 0) -> np.ndarray:
    """The ``n`` channels a figure shows (all of them when there are at most ``n``).

    ``uniform`` (default, the paper's "uniformly sampled" read as evenly spaced and deterministic):
    ``round(linspace(0, C − 1, n))``; ``random``: ``n`` distinct channels drawn with ``seed``,
    sorted; ``first``: channels 0 … n − 1.
    """
    if n >= channels:
        return np.arange(channels)
    if mode == "uniform":
        return np.linspace(0, channels - 1, n).round().astype(int)
    if mode == "random":
        return np.sort(np.random.default_rng(seed).choice(channels, n, replace=False))
    if mode == "first":
        return np.arange(n)
    raise ValueError(
        f"channel selection {mode!r} is not supported; choose uniform, random or first"
    )


def _class_ids(
    stats: ExcitationStats, classes: Sequence[str | int] | None, limit: int = 4
) -> list[int]:
    names = stats.classes or [str(i) for i in range(stats.num_classes)]
    if classes is None:
        return list(range(min(limit, stats.num_classes)))
    ids = []
    for c in classes:
        if isinstance(c, int) or (isinstance(c, str) and c.isdigit() and c not in names):
            ids.append(int(c))
        elif c in names:
            ids.append(names.index(c))
        else:
            raise ValueError(f"unknown class {c!r}; the statistics have classes {', '.join(names)}")
    bad = [i for i in ids if not 0 <= i < stats.num_classes]
    if bad:
        raise ValueError(f"class index {bad[0]} is out of range 0..{stats.num_classes - 1}")
    return ids


def _grid(n: int):
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = _plt().subplots(
        rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def plot_class_means(
    stats: ExcitationStats,
    path: str | Path,
    blocks: Sequence[str],
    classes: Sequence[str | int] | None = None,
    n_channels: int = 50,
    channel_mode: str = "uniform",
    channel_seed: int = 0,
) -> Path:
    """Fig. 6: per block, mean excitation of the chosen channels for several classes and for all."""
    ids = _class_ids(stats, classes)
    labels = stats.classes or [str(i) for i in range(stats.num_classes)]
    fig, axes = _grid(len(blocks))
    for ax, name in zip(axes, blocks):
        ch = channel_indices(stats.sums[name].shape[1], n_channels, channel_mode, channel_seed)
        mean = stats.class_mean(name)
        for k in ids:
            ax.plot(np.arange(len(ch)), mean[k, ch], lw=1, label=labels[k])
        ax.plot(np.arange(len(ch)), stats.overall_mean(name)[ch], "k--", lw=1.2, label="all")
        ax.set_title(name)
        ax.set_xlabel("channel index" if channel_mode == "first" else "sampled channel")
        ax.set_ylabel("activation")
    axes[0].legend(fontsize=7)
    fig.suptitle("Mean excitation per class (cf. the paper's Fig. 6)")
    return _save(fig, path)


def plot_class_spread(
    stats: ExcitationStats,
    path: str | Path,
    blocks: Sequence[str],
    cls: str | int,
    n_channels: int = 50,
    channel_mode: str = "uniform",
    channel_seed: int = 0,
) -> Path:
    """Fig. 7: per block, mean ± std of the excitation within one class."""
    (k,) = _class_ids(stats, [cls])
    label = (stats.classes or [str(i) for i in range(stats.num_classes)])[k]
    fig, axes = _grid(len(blocks))
    for ax, name in zip(axes, blocks):
        ch = channel_indices(stats.sums[name].shape[1], n_channels, channel_mode, channel_seed)
        x = np.arange(len(ch))
        m, s = stats.class_mean(name)[k, ch], stats.class_std(name)[k, ch]
        ax.plot(x, m, lw=1)
        ax.fill_between(x, m - s, m + s, alpha=0.3)
        ax.set_title(name)
        ax.set_xlabel("channel index" if channel_mode == "first" else "sampled channel")
    fig.suptitle(f"Excitation mean ± std within class {label!r} (cf. the paper's Fig. 7)")
    return _save(fig, path)


def plot_specificity(stats: ExcitationStats, path: str | Path) -> Path:
    """Per block (in depth order): class specificity (η²) and mean excitation (saturation)."""
    plt = _plt()
    names = stats.names
    spec = [stats.specificity(n) for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names)), 3.6))
    x = np.arange(len(names))
    ax.bar(
        x, [s["eta2"] for s in spec], color="tab:blue", label="η² (between-class / total variance)"
    )
    ax.set_ylabel("η²")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    ax2 = ax.twinx()
    ax2.plot(x, [s["mean"] for s in spec], "o-", color="tab:red", label="mean excitation")
    ax2.set_ylabel("mean excitation")
    fig.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7)
    ax.set_title("Class specificity per SE block")
    return _save(fig, path)


def plot_error_vs_params(
    rows: Sequence[dict], path: str | Path, title: str = "top-1 error vs. parameters"
) -> Path:
    """Ablation: mean top-1 error (± std over seeds) against parameters, one point per variant."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for r in rows:
        ax.errorbar(
            r["params"] / 1e6, r["top1_err"], yerr=r.get("top1_err_std") or 0.0, fmt="o", capsize=3
        )
        ax.annotate(
            r["variant"],
            (r["params"] / 1e6, r["top1_err"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel("top-1 error (%)")
    ax.set_title(title)
    return _save(fig, path)
