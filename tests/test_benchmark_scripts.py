"""The scripts in benchmarks/ run end to end on tiny settings (one of them once crashed on its
last line, writing its report, after every timed round had run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.mark.slow
def test_train_loop_overhead_writes_its_report(tmp_path: Path) -> None:
    stem = tmp_path / "loop"
    proc = _run(
        "train_loop_overhead.py",
        *("--images", "128", "--batch-size", "32", "--bare-steps", "2", "--rounds", "1"),
        *("--threads", "1", "--clock", "cpu", "--out", str(stem)),
    )
    assert "train()/bare" in proc.stdout
    report = json.loads(stem.with_suffix(".json").read_text())
    assert report["cpu"] and report["median"]["ratio"] > 0
    assert len(report["rounds"]) == 1
    assert "| **median** |" in stem.with_suffix(".md").read_text()


@pytest.mark.slow
def test_block_overhead_writes_its_report(tmp_path: Path) -> None:
    stem = tmp_path / "block"
    _run(
        "block_overhead.py", "--rounds", "1", "--threads", "1", "--amp", "none", "--out", str(stem)
    )
    text = stem.with_suffix(".md").read_text()
    assert "cifar_se_resnet20 stage1" in text and "fp32 CL" in text
    assert json.loads(stem.with_suffix(".json").read_text())


def test_native_kernels_writes_its_report(tmp_path: Path) -> None:
    from senet.layers import native

    if not native.available():
        pytest.skip(f"native SE kernels cannot be built here: {native.status()}")
    stem = tmp_path / "native"
    _run(
        "native_kernels.py",
        *("--amp", "none", "--batch", "8", "--rounds", "1", "--steps", "1", "--threads", "1"),
        *("--out", str(stem)),
    )
    text = stem.with_suffix(".md").read_text()
    assert "SE-ResNet-20, C++ node" in text and "SE-ResNet-20, ATen only" in text
    rows = json.loads(stem.with_suffix(".json").read_text())["rows"]
    assert len(rows) == 5 and all(r["median ms"] > 0 for r in rows)
    assert "BN outside it" in text


def test_profile_se_prints_a_profile() -> None:
    proc = _run(
        "profile_se.py",
        "cifar_se_resnet20",
        *("--batch", "2", "--size", "32", "--steps", "1", "--train", "--threads", "1"),
        *("--layout", "cl", "--path", "aten"),
    )
    assert "Self CPU time total" in proc.stdout


def test_quiet_sh_pauses_matching_processes_and_resumes_them(tmp_path: Path) -> None:
    marker = f"quiet-test-{os.getpid()}"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    try:
        state = f"ps -o stat= -p {sleeper.pid} | cut -c1"
        proc = subprocess.run(
            [str(ROOT / "benchmarks" / "quiet.sh"), "bash", "-c", state],
            capture_output=True,
            text=True,
            env={**os.environ, "PATTERN": marker},
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "T", "paused while the command ran"
        assert f"pausing 1 process(es) matching '{marker}'" in proc.stderr
        after = subprocess.run(["bash", "-c", state], capture_output=True, text=True).stdout
        assert after.strip() in {"S", "R"}, "resumed afterwards"
        failing = subprocess.run(
            [str(ROOT / "benchmarks" / "quiet.sh"), "false"],
            env={**os.environ, "PATTERN": marker},
            timeout=60,
        )
        assert failing.returncode == 1, "the command's exit status comes back"
        after = subprocess.run(["bash", "-c", state], capture_output=True, text=True).stdout
        assert after.strip() in {"S", "R"}, "resumed after a failing command too"
    finally:
        sleeper.kill()


def test_se_share_removes_exactly_the_se_op(tmp_path: Path) -> None:
    """With the SE op removed, an SE net computes what it computes with every gate at 1 (the
    plain residual), and the script writes its five rows."""
    import importlib.util

    import torch

    import senet

    spec = importlib.util.spec_from_file_location("se_share", ROOT / "benchmarks" / "se_share.py")
    se_share = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(se_share)
    torch.manual_seed(0)
    model = senet.create_model("cifar_se_resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        normal = model(x)
        with se_share.se_op_removed(True):
            removed = model(x)
        for m in model.modules():
            if isinstance(m, senet.layers.se.SqueezeExcitation):
                m.fc2.weight.zero_()
                m.fc2.bias.fill_(50.0)  # sigmoid(50) == 1 in float32: the gate passes everything
        gates_open = model(x)
    torch.testing.assert_close(removed, gates_open)
    assert not torch.allclose(removed, normal)

    stem = tmp_path / "share"
    _run(
        "se_share.py",
        *("--se-model", "cifar_se_resnet20", "--plain-model", "cifar_resnet20", "--size", "32"),
        *("--amp", "none", "--rounds", "1", "--calls", "1", "--threads", "1", "--out", str(stem)),
    )
    rows = json.loads(stem.with_suffix(".json").read_text())["rows"]
    assert [r["case"] for r in rows] == [
        "plain",
        "SE",
        "SE, called through torch.ops",
        "SE, BN outside the node",
        "SE op removed",
    ]
    assert "Where SE's inference overhead goes" in stem.with_suffix(".md").read_text()
