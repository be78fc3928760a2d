"""The machine, versions and load a benchmark ran with (every results file records them)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from senet._version import __version__
from senet.layers import native
from senet.utils.cpu import cpu_info
from senet.utils.io import atomic_write_json, atomic_write_text


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    return cpu_info().model


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages, or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def git_sha() -> str | None:
    """The senet checkout's commit (with ``+dirty`` when it has uncommitted changes), if any."""
    root = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def _version(package: str) -> str | None:
    """An installed package's version (from its metadata: nothing is imported), or None."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, object]:
    """Machine (CPU model, cores, threads), versions (python, torch, torchvision, timm, senet)."""
    info = cpu_info()
    return {
        "cpu": info.model,
        "cpu_capability": info.capability,
        "cpu_flags": sorted(info.flags),
        "cpu_summary": info.describe(),
        "native_se_kernels": native.status(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "senet": __version__,
        "senet_git": git_sha(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_report(
    stem: str | Path, result: dict[str, Any], title: str, notes: list[str], table: str
) -> None:
    """``STEM.json`` (``result``, which holds ``command``, ``environment``, ``load_start`` and
    ``load_end``) and ``STEM.md``: ``title``, the command, machine, versions and load, ``notes``
    (one bullet each), then the markdown ``table``."""
    env = result["environment"]
    lines = [
        f"# {title}",
        "",
        f"- command: `{result['command']}`",
        f"- machine: {env['cpu_summary']}, {env['cores']} cores; torch {env['torch']}, "
        f"senet {env['senet_git']}",
        f"- load average start {result['load_start']}, end {result['load_end']}",
        *(f"- {note}" for note in notes),
        "",
        table,
        "",
    ]
    atomic_write_json(f"{stem}.json", result)
    atomic_write_text(f"{stem}.md", "\n".join(lines))
