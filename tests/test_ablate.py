"""Ablation runner: grid, claims, resume and the paper-style table (Sec. 6, Tables 10–16)."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from senet.analysis import ablation as ab


def _grid(tmp_path: Path, seeds=(0, 1), vary=None) -> ab.AblationGrid:
    variants = ab.build_variants("cifar_se_resnet20", vary or {"reduction": [4, 16]})
    return ab.AblationGrid(variants, list(seeds), tmp_path / "grid", "digits", {"epochs": 1})


def _fake_err(cfg: dict) -> float:
    return 10.0 + cfg["model_options"].get("reduction", 0) / 4 + 1.5 * cfg["seed"]


def stub_runner(cfg: dict) -> dict:
    """Writes what a finished training run writes (summary.json last), with known numbers."""
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / "calls.log", "a") as f:
        f.write(out.name + "\n")
    s = {
        "status": "finished",
        "val_top1_err": _fake_err(cfg),
        "val_top5_err": 1.0 + cfg["seed"],
        "params": 123,
        "mean_images_per_s": 1000.0 + cfg["seed"],
        "epochs": cfg["epochs"],
    }
    (out / "summary.json").write_text(json.dumps(s))
    return s


def _calls(grid: ab.AblationGrid) -> list[str]:
    p = Path(grid.out) / "calls.log"
    return p.read_text().split() if p.exists() else []


def test_parse_vary_and_variants() -> None:
    vary = ab.parse_vary(
        ["reduction=4,16", "gate=sigmoid,relu", "se_stages=1,2+3", "se_bias=false"]
    )
    assert vary == {
        "reduction": [4, 16],
        "gate": ["sigmoid", "relu"],
        "se_stages": [1, (2, 3)],
        "se_bias": [False],
    }
    variants = ab.build_variants(
        "cifar_se_resnet20", {"reduction": [4, 16], "gate": ["sigmoid"]}, True, True
    )
    assert [v.name for v in variants] == [
        "reduction=4,gate=sigmoid",
        "reduction=16,gate=sigmoid",
        "nosqueeze",
        "baseline",
    ]
    assert variants[-1].model == "cifar_resnet20" and variants[0].slug == "reduction-4_gate-sigmoid"
    studies = {"reduction": [4, 16, 8], "squeeze": ["avg", "max"], "gate": ["sigmoid", "tanh"]}
    one = ab.build_variants("cifar_se_resnet20", studies, one_at_a_time=True)
    assert [v.name for v in one] == [
        "se",
        "reduction=4",
        "reduction=8",
        "squeeze=max",
        "gate=tanh",
    ]
    assert one[1].options == (("reduction", 4),) and one[0].options == ()
    around = ab.build_variants(
        "cifar_se_resnet20", studies, base_options={"reduction": 4}, one_at_a_time=True
    )
    assert [v.name for v in around][:3] == ["se", "reduction=16", "reduction=8"]
    with pytest.raises(ValueError, match="KEY=V1,V2"):
        ab.parse_vary(["reduction"])
    with pytest.raises(ValueError, match="gate"):
        ab.build_variants("cifar_se_resnet20", {"gate": ["softmax"]})
    with pytest.raises(ValueError, match="no SE blocks"):
        ab.build_variants("cifar_resnet20", {})


def test_table_has_one_row_per_variant_with_mean_and_std(tmp_path) -> None:
    grid = _grid(tmp_path)
    counts = ab.run_grid(grid, stub_runner, log=lambda _: None)
    assert counts["trained"] == 4
    paths = ab.write_table(grid, input_size=32)
    rows, per_run = ab.collect_results(grid, 32)
    assert [r["variant"] for r in rows] == ["reduction=4", "reduction=16"]
    for r in rows:
        errs = [
            json.loads((Path(d["run_dir"]) / "summary.json").read_text())["val_top1_err"]
            for d in per_run
            if d["variant"] == r["variant"]
        ]
        assert len(errs) == 2
        assert r["top1_err"] == pytest.approx(sum(errs) / 2)
        assert r["top1_err_std"] == pytest.approx(abs(errs[0] - errs[1]) / math.sqrt(2))
    assert rows[0]["params"] > rows[1]["params"]  # r=4 has wider SE blocks than r=16
    md = paths["table.md"].read_text()
    assert md.count("| reduction=") == 2 and "11.75 ± 1.06" in md  # (11 + 12.5)/2, std 1.5/√2
    assert paths["table.csv"].read_text().splitlines()[0].startswith("variant,model,reduction")
    assert paths["error_vs_params.png"].read_bytes()[:4] == b"\x89PNG"


def test_rerun_skips_finished_and_resumes_after_a_kill(tmp_path) -> None:
    grid = _grid(tmp_path)

    def dies_on_third(cfg: dict) -> dict:
        if len(_calls(grid)) == 2:
            Path(cfg["out"]).mkdir(parents=True, exist_ok=True)  # a half-done run: no summary.json
            raise KeyboardInterrupt
        return stub_runner(cfg)

    with pytest.raises(KeyboardInterrupt):
        ab.run_grid(grid, dies_on_third, log=lambda _: None)
    assert len(_calls(grid)) == 2
    assert not list((grid.out / ".claims").glob("*.claim"))  # the claim was released
    counts = ab.run_grid(grid, stub_runner, log=lambda _: None)
    assert counts == {
        "trained": 2,
        "finished_before": 2,
        "taken_by_others": 0,
        "interrupted": 0,
        "failed": 0,
    }
    assert sorted(_calls(grid)) == sorted(r.run_id for r in grid.runs())  # each run trained once
    rows, _ = ab.collect_results(grid, 32)
    assert all(r["seeds_done"] == 2 for r in rows)


def test_failed_run_is_recorded_and_the_grid_goes_on(tmp_path) -> None:
    grid = _grid(tmp_path)

    def diverges_at_r4(cfg: dict) -> dict:
        if cfg["model_options"]["reduction"] == 4 and cfg["seed"] == 1:
            raise RuntimeError("training loss became nan")
        return stub_runner(cfg)

    counts = ab.run_grid(grid, diverges_at_r4, log=lambda _: None)
    assert counts["trained"] == 3 and counts["failed"] == 1
    assert "nan" in ab.failure(grid.out / "reduction-4__s1")["error"]
    assert (
        ab.run_grid(grid, stub_runner, log=lambda _: None)["failed"] == 1
    )  # not retried by default
    md = ab.write_table(grid, 32, plot=False)["table.md"].read_text()
    assert "1/2 (1 failed)" in md
    assert ab.run_grid(grid, stub_runner, retry_failed=True, log=lambda _: None)["trained"] == 1
    assert ab.failure(grid.out / "reduction-4__s1") is None


def test_claims_dead_and_live_workers(tmp_path) -> None:
    grid = _grid(tmp_path, seeds=(0,))
    runs = grid.runs()
    claims = grid.out / ".claims"
    claims.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    (claims / f"{runs[0].run_id}.claim").write_text(json.dumps({"pid": dead.pid, "host": host}))
    (claims / f"{runs[1].run_id}.claim").write_text(json.dumps({"pid": os.getppid(), "host": host}))
    counts = ab.run_grid(grid, stub_runner, log=lambda _: None)
    assert counts["trained"] == 1 and counts["taken_by_others"] == 1  # killed worker's run retaken
    assert _calls(grid) == [runs[0].run_id]
    # a live claim that stopped being refreshed is stale after stale_after seconds
    old = time.time() - 100
    os.utime(claims / f"{runs[1].run_id}.claim", (old, old))
    assert ab.run_grid(grid, stub_runner, stale_after=50, log=lambda _: None)["trained"] == 1


def _worker(out: str) -> None:
    grid = _grid(Path(out).parent)

    def slow(cfg: dict) -> dict:
        time.sleep(0.2)
        return stub_runner(cfg)

    ab.run_grid(grid, slow, log=lambda _: None)


def test_parallel_workers_never_share_a_run(tmp_path) -> None:
    grid = _grid(tmp_path)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(grid.out),)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    calls = _calls(grid)
    assert sorted(calls) == sorted(r.run_id for r in grid.runs())


def test_cli_runs_a_one_run_grid_in_process(tiny_imagefolder: Path, tmp_path: Path, capsys) -> None:
    """The command's whole path (parser → grid → training → table) in the quick suite; the
    subprocess tests in test_analysis_cli.py cover resume, claims and failures."""
    from senet.cli import main

    args = "--recipe cifar --vary reduction=8 --dataset imagefolder --epochs 1 --train-subset 6"
    args += " --val-subset 3 --batch-size 6 --threads 1 --workers 0"
    out = tmp_path / "g"
    assert (
        main(["ablate", *args.split(), "--data-dir", str(tiny_imagefolder), "--out", str(out)]) == 0
    )
    assert '"trained": 1' in capsys.readouterr().out
    assert (out / "reduction-8__s0" / "summary.json").is_file()
    assert "| reduction=8 | cifar_se_resnet20 |" in (out / "table.md").read_text()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--vary", "reduction"], "must look like KEY=V1,V2"),
        (["--vary", "reductoin=4"], "has no option 'reductoin'; did you mean reduction"),
        (["--seeds", "0"], "--seeds 0 must be ≥ 1"),
        (["--set", "lr"], "--set 'lr' must look like KEY=VALUE"),
    ],
)
def test_cli_bad_input_in_process(argv, message, tmp_path: Path, capsys) -> None:
    from senet.cli import main

    assert main(["ablate", "--recipe", "digits", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
