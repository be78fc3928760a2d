"""`senet compare` and senet.analysis.runs: runs grouped by setting, tested over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _helpers import run_senet
from senet.analysis.runs import (
    _curve_label,
    compare_groups,
    find_runs,
    format_table,
    group_runs,
)
from senet.analysis.significance import welch_t_test

PLAIN = [8.6, 8.4, 8.9]
SE = [8.0, 7.9, 8.3]


def _fake_run(
    root: Path, model: str, seed: int, final: float, epochs: int = 4, done: bool = True
) -> Path:
    d = root / model / f"s{seed}"
    d.mkdir(parents=True)
    cfg = {"model": model, "seed": seed, "epochs": epochs, "amp": "bf16", "model_options": {}}
    (d / "config.json").write_text(json.dumps(cfg))
    hist = [
        {
            "epoch": e,
            "val_top1_err": final + 3 * (epochs - e),
            "train_top1_err": final + 4 * (epochs - e),
        }
        for e in range(1, epochs + 1)
    ]
    (d / "metrics.jsonl").write_text("\n".join(json.dumps(h) for h in hist) + "\n")
    if done:
        summary = {
            "status": "finished",
            "params": 1000,
            "mean_images_per_s": 500.0,
            "train_time_s": 600.0,
        }
        (d / "summary.json").write_text(json.dumps(summary))
    return d


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    for s, v in enumerate(PLAIN):
        _fake_run(tmp_path, "cifar_resnet20", s, v)
    for s, v in enumerate(SE):
        _fake_run(tmp_path, "cifar_se_resnet20", s, v)
    _fake_run(tmp_path, "cifar_se_resnet20", 3, 1.0, done=False)  # unfinished: not counted
    return tmp_path


def test_groups_and_welch(runs_dir: Path) -> None:
    runs = find_runs([runs_dir])
    assert len(runs) == 7 and len(group_runs(runs)) == 2
    rows = compare_groups(runs, baseline="cifar_resnet20 bf16")
    base, se = rows
    assert base.test is None and base.values == PLAIN and se.seeds == [0, 1, 2]
    ref = welch_t_test(SE, PLAIN)
    assert se.test["diff"] == pytest.approx(ref.diff) and se.test["p_value"] == pytest.approx(
        ref.p_value
    )
    table = format_table(rows)
    assert "| cifar_se_resnet20 bf16 | 3 (+1 unfinished) |" in table and "8.07 ± 0.21" in table


def test_baseline_without_finished_runs(tmp_path: Path) -> None:
    """While the baseline's runs are all unfinished, no row claims to be the baseline or a Δ."""
    _fake_run(tmp_path, "cifar_resnet20", 0, 9.0, done=False)
    _fake_run(tmp_path, "cifar_se_resnet20", 0, 8.0)
    rows = compare_groups(find_runs([tmp_path]), baseline="cifar_resnet20 bf16")
    lines = format_table(rows).splitlines()
    assert lines[2].startswith("| cifar_resnet20 bf16 | 0 (+1 unfinished) | – | – | baseline |")
    # one finished run: its value without a ± 0.00 spread, and no comparison
    assert lines[3].startswith("| cifar_se_resnet20 bf16 | 1 | 8.00 | s0: 8.00 | – |")
    # the curves' legend says when a group's later epochs average fewer runs
    groups = group_runs(find_runs([tmp_path]))
    assert _curve_label("a", groups["cifar_resnet20 bf16"]) == "a (1 run, 1 unfinished)"
    assert _curve_label("b", groups["cifar_se_resnet20 bf16"]) == "b (1 run)"


def test_bad_baseline_and_missing_paths(runs_dir: Path, tmp_path: Path) -> None:
    runs = find_runs([runs_dir])
    with pytest.raises(ValueError, match="matches more than one group"):
        compare_groups(runs, baseline="resnet20")
    with pytest.raises(ValueError, match="matches no group"):
        compare_groups(runs, baseline="vgg")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no training runs"):
        find_runs([empty])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_runs([tmp_path / "nope"])


def test_cli_writes_table_json_and_plot(runs_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run_senet("compare", runs_dir, "--baseline", "cifar_resnet20", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "cifar_se_resnet20 bf16" in done.stdout
    data = json.loads((out / "comparison.json").read_text())
    assert [g["n"] for g in data["groups"]] == [3, 3]
    assert (out / "comparison.md").read_text().startswith("| setting |")
    assert (out / "curves.png").stat().st_size > 10_000
    bad = run_senet("compare", tmp_path / "nope")
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
