"""`senet ablate`, `senet analyze excitations` and `senet prune`: the real entry point in a subprocess
on tiny generated data (exit code, output files, table lines), plus their bad-input errors."""

from __future__ import annotations

import csv
import json
import os
import shlex
import socket
import subprocess
from pathlib import Path

import pytest
import torch

import senet
from _helpers import run_senet
from senet.interop.weights_file import save_weights


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def one_line_error(proc: subprocess.CompletedProcess, command: str) -> str:
    """Exit 2 and a single ``senet CMD: error: ...`` line, no traceback."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"senet {command}: error: "), proc.stderr
    return lines[0]


@pytest.fixture
def checkpoint(tiny_imagefolder: Path, tmp_path: Path) -> Path:
    """An (untrained) CIFAR SE-ResNet-20 for the tiny 3-class, 16×16 ImageFolder tree."""
    torch.manual_seed(0)
    model = senet.create_model("cifar_se_resnet20", num_classes=3)
    classes = sorted(p.name for p in (tiny_imagefolder / "train").iterdir())
    meta = {"mean": [0.5] * 3, "std": [0.25] * 3, "input_size": 16, "classes": classes}
    return save_weights(model, tmp_path / "model.safetensors", meta)


# --------------------------------------------------------------------------------------------
# senet ablate
# --------------------------------------------------------------------------------------------
def _ablate(data: Path, out: Path, *extra: object) -> subprocess.CompletedProcess:
    common = "--model cifar_se_resnet20 --recipe cifar --vary reduction=4,8 --dataset imagefolder"
    common += " --batch-size 24 --threads 1 --workers 0"
    return run_senet("ablate", *common.split(), "--data-dir", data, "--out", out, *extra)


def _counts(stdout: str) -> dict[str, int]:
    return json.loads(next(x for x in stdout.splitlines() if x.startswith('{"trained"')))


@pytest.mark.slow
def test_ablate_trains_the_grid_resumes_and_writes_the_table(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    """2 variants × 1 seed of real 2-epoch runs: interrupted, resumed, a run held by another
    worker's live claim, a recorded failure skipped and then retried; the table at each step."""
    out = tmp_path / "grid"
    r4, r8 = out / "reduction-4__s0", out / "reduction-8__s0"
    # 1. the first run stops after one of its two epochs: the worker stops, exit 1
    proc = _ablate(tiny_imagefolder, out, "--epochs", 2, "--set", "stop_after_epochs=1")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert _counts(proc.stdout)["interrupted"] == 1
    assert (r4 / "checkpoint.pt").is_file() and not (r4 / "summary.json").exists()
    # 2. another live worker (this process, same host) holds reduction=8: it is left alone;
    #    reduction=4 resumes at epoch 2 instead of starting again
    claim = out / ".claims" / "reduction-8__s0.claim"
    claim.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    counts = _counts(ok(_ablate(tiny_imagefolder, out, "--epochs", 2)))
    assert counts["trained"] == 1 and counts["taken_by_others"] == 1
    epochs = [json.loads(x)["epoch"] for x in (r4 / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    assert not r8.exists() and claim.is_file()  # not ours to remove
    # 3. a recorded failure is skipped, not retried, and counted in the table
    claim.unlink()
    r8.mkdir()
    (r8 / "failed.json").write_text(json.dumps({"error": "RuntimeError: loss became nan"}))
    stdout = ok(_ablate(tiny_imagefolder, out, "--epochs", 2))
    expected = {"finished_before": 1, "failed": 1, "trained": 0, "interrupted": 0}
    assert _counts(stdout) == {**expected, "taken_by_others": 0}
    assert "| reduction=8 | cifar_se_resnet20 | – | – |" in stdout and "0/1 (1 failed)" in stdout
    # 4. --retry-failed trains it; the table then has both rows, finished
    stdout = ok(_ablate(tiny_imagefolder, out, "--epochs", 2, "--retry-failed"))
    assert _counts(stdout)["trained"] == 1 and not (r8 / "failed.json").exists()
    table = (out / "table.md").read_text()
    rows = [x for x in table.splitlines() if x.startswith("| reduction=")]
    assert len(rows) == 2 and all(x.endswith("| 1/1 |") for x in rows)
    with open(out / "table.csv") as f:
        by_variant = {r["variant"]: r for r in csv.DictReader(f)}
    assert set(by_variant) == {"reduction=4", "reduction=8"}
    assert int(by_variant["reduction=4"]["params"]) > int(by_variant["reduction=8"]["params"])
    summary = json.loads((r4 / "summary.json").read_text())
    assert float(by_variant["reduction=4"]["top1_err"]) == pytest.approx(summary["val_top1_err"])
    assert len((out / "runs.csv").read_text().splitlines()) == 3  # header + 2 runs
    assert (out / "error_vs_params.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "grid.json").read_text())["variants"][1]["options"] == {"reduction": 8}
    # 5. --dry-run and --table-only train nothing
    dry = ok(_ablate(tiny_imagefolder, out, "--dry-run", "--baseline"))
    states = [x.split() for x in dry.splitlines()]
    assert states == [
        ["reduction-4__s0", "finished"],
        ["reduction-8__s0", "finished"],
        ["baseline__s0", "todo"],
    ]
    assert "| reduction=4 |" in ok(_ablate(tiny_imagefolder, out, "--table-only"))


@pytest.mark.slow
def test_ablate_bad_input_is_one_line(tmp_path: Path) -> None:
    err = one_line_error(run_senet("ablate", "--out", tmp_path, "--vary", "reduction"), "ablate")
    assert "KEY=V1,V2" in err


# --------------------------------------------------------------------------------------------
# senet analyze excitations, senet prune
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_analyze_excitations_and_prune(
    tiny_imagefolder: Path, checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "exc"
    args = ["--data-dir", tiny_imagefolder, "--per-class", 4, "--classes", "bars", "stripes"]
    args += ["--workers", 0]  # streamed from the image files
    stdout = ok(run_senet("analyze", "excitations", checkpoint, *args, "--out", out))
    figures = ["fig6_class_means.png", "fig7_bars.png", "fig7_stripes.png", "specificity.png"]
    for name in ["excitations.npz", *figures, "specificity.md"]:
        assert (out / name).stat().st_size > 0, name
    spec = json.loads((out / "specificity.json").read_text())
    assert spec["images_per_class"] == [4, 4, 4] and spec["blocks"][0]["name"] == "SE_2_1"
    assert len(spec["blocks"]) == 9 and "| SE_4_3 | layer3.2.se | 64 |" in stdout
    assert spec["classes_shown"] == ["bars", "stripes"] and spec["channel_mode"] == "uniform"

    pout = tmp_path / "pruned"
    args = shlex.split("--amount 0.5 --rankings excitation,l1 --finetune-epochs 1 --batch-size 8")
    args += ["--data-dir", tiny_imagefolder, "--stats", out / "excitations.npz"]
    ok(run_senet("prune", checkpoint, *args, "--out", pout))
    report = json.loads((pout / "prune_report.json").read_text())
    ex, l1 = report["pruned"]["excitation"], report["pruned"]["l1"]
    assert ex["params"] == l1["params"] < report["unpruned"]["params"]
    assert ex["macs"] < report["unpruned"]["macs"] and "finetuned" in ex
    assert (pout / "prune_report.md").read_text().count("|") > 10
    # the pruned checkpoint is accepted by the analysis command
    pruned = pout / "pruned_l1.safetensors"
    args = ["--data-dir", tiny_imagefolder, "--per-class", 2, "--out", tmp_path / "exc2"]
    ok(run_senet("analyze", "excitations", pruned, *args))
    assert (tmp_path / "exc2" / "excitations.npz").is_file()


@pytest.mark.slow
def test_analyze_excitations_paper_preset_on_imagenet_wnids(
    imagefolder_factory, tmp_path: Path
) -> None:
    """Class folders named by ImageNet wnids: the paper's four classes are chosen by default;
    ``--per-class 0`` streams every image; an unknown class fails before any work."""
    from senet.analysis.excitations import ExcitationStats

    wnids = ("n01440764", "n01443537", "n02110958", "n02690373", "n09246464")
    data = imagefolder_factory(tmp_path / "imnet", classes=wnids, n_train=1, n_val=3)
    torch.manual_seed(0)
    model = senet.create_model("cifar_se_resnet20", num_classes=5)
    ckpt = save_weights(model, tmp_path / "m.safetensors", {"classes": list(wnids)})
    args = ["--data-dir", data, "--per-class", 0, "--channel-mode", "random", "--workers", 0]
    out = tmp_path / "exc"
    ok(run_senet("analyze", "excitations", ckpt, *args, "--channels", 5, "--out", out))
    spec = json.loads((out / "specificity.json").read_text())
    assert spec["classes_shown"] == list(wnids[1:]) and spec["images_per_class"] == [3] * 5
    assert spec["channel_mode"] == "random" and spec["n_channels"] == 5
    assert all((out / f"fig7_{w}.png").is_file() for w in wnids[1:])
    assert ExcitationStats.load(out / "excitations.npz").classes == list(wnids)
    bad = [*args, "--classes", "n00000000", "--out", tmp_path / "c"]
    err = one_line_error(run_senet("analyze", "excitations", ckpt, *bad), "analyze")
    assert "unknown class 'n00000000'" in err


@pytest.mark.slow
def test_analyze_and_prune_bad_input_is_one_line(tmp_path: Path, checkpoint: Path) -> None:
    missing = tmp_path / "none.safetensors"
    err = one_line_error(run_senet("analyze", "excitations", missing, "--out", tmp_path), "analyze")
    assert "does not exist" in err
    err = one_line_error(
        run_senet("prune", checkpoint, "--rankings", "l2", "--out", tmp_path), "prune"
    )
    assert "unknown ranking" in err
