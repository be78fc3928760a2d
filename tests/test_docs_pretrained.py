"""docs/pretrained.md: every `senet ...` line of its ```sh blocks and every ```python block runs.

Offline: the cache ($SENET_HOME) is pre-filled with random weights in each entry's own format
(timm's ``legacy_seresnet50`` for the original release, timm's ``seresnet50`` for ra2_in1k), and
SENET_OFFLINE=1 forbids the network; the page's folders are generated.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _helpers import randomize_bn
from conftest import make_imagefolder
from senet.weights import get_weights
from senet.weights.download import file_name

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "pretrained.md"
timm = pytest.importorskip("timm")


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block not preceded by a ``<!-- not run`` comment."""
    out = []
    for m in re.finditer(r"(<!-- not run[^>]*-->\s*)?```(\w*)\n(.*?)```", text, re.S):
        if not m.group(1):
            out.append((m.group(2), m.group(3)))
    return out


def test_the_page_has_commands_to_run() -> None:
    found = blocks(PAGE.read_text())
    commands = [
        line
        for lang, body in found
        if lang == "sh"
        for line in body.splitlines()
        if line.startswith("senet ")
    ]
    assert len(commands) >= 8 and sum(lang == "python" for lang, _ in found) >= 3


@pytest.mark.slow
def test_every_command_of_the_page_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for tag, ref_name in (("original", "legacy_seresnet50"), ("ra2_in1k", "seresnet50")):
        entry = get_weights("se_resnet50", tag)
        target = home / "weights" / "se_resnet50" / tag / file_name(entry.url)
        target.parent.mkdir(parents=True)
        torch.manual_seed(0)
        torch.save(randomize_bn(timm.create_model(ref_name)).state_dict(), target)
    work = tmp_path / "work"
    make_imagefolder(work / "my_data", n_train=4, n_val=2)
    (work / "photos").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(
        work / "photos" / "cat.jpg"
    )
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(
        work / "photos" / "dog.png"
    )
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "PYTHONPATH": str(REPO / "src"),
        "SENET_HOME": str(home),
        "SENET_OFFLINE": "1",
        "OMP_NUM_THREADS": "2",
    }
    for lang, body in blocks(PAGE.read_text()):
        if lang == "sh":
            runs = [
                [sys.executable, "-m", "senet", *shlex.split(line)[1:]]
                for line in body.splitlines()
                if line.startswith("senet ")
            ]
        elif lang == "python":
            runs = [[sys.executable, "-c", body.replace("path/to/senet", str(REPO))]]
        else:
            continue
        for cmd in runs:
            proc = subprocess.run(
                cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900
            )
            assert proc.returncode == 0, f"{cmd[-1][:200]}\n{proc.stderr[-2000:]}"
    assert (work / "finetuned.safetensors").is_file() and (work / "finetuned.onnx").is_file()
    summary = (work / "runs" / "finetuned" / "summary.json").read_text()
    assert (
        "pretrained weights" in summary
        and (work / "runs" / "finetuned" / "model.safetensors").is_file()
    )
