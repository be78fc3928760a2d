"""`senet bench` and the benchmark library (issue 7). Timing values are never asserted."""

from __future__ import annotations

import json
import time

import pytest
import torch

from senet.bench import format_table, run_bench, write_results
from senet.bench.cases import Case, build_model, infer_case, train_case
from senet.bench.env import environment, load_average
from senet.bench.plain_loop import PlainCifarResNet, prepare_imagefolder
from senet.bench.report import comparison_rows
from senet.bench.runner import Timing, paired_ratio, run_group
from senet.bench.suites import SUITES, Comparison, SuiteOptions, build_suite
from senet.cli import main
from senet.layers import ops


def _case(label: str, calls: list[str], path: str = "fast") -> Case:
    def step() -> None:
        calls.append(f"{label}:{ops.fast_path_enabled()}")

    return Case(label, "g", "infer", "m", 2, 8, "nchw", path, step, 2)


def test_run_group_interleaves_rounds_and_selects_each_case_path():
    calls: list[str] = []
    cases = [_case("a", calls, "fast"), _case("b", calls, "reference")]
    timings = run_group(cases, rounds=3, steps=2, warmup=1)
    assert [len(t.wall) for t in timings] == [3, 3] and [len(t.cpu) for t in timings] == [3, 3]
    # warm-up a, b; then rounds alternate direction: a a b b | b b a a | a a b b
    order = [c.split(":")[0] for c in calls]
    assert order == ["a", "b", *"aabb", *"bbaa", *"aabb"]
    assert all(c.endswith("True") for c in calls if c.startswith("a"))
    assert all(c.endswith("False") for c in calls if c.startswith("b")), (
        "reference case must run the reference path"
    )
    assert ops.fast_path_enabled() is True or ops.fast_path_enabled() is False


def test_run_group_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rounds"):
        run_group([], rounds=0, steps=1)
    with pytest.raises(ValueError, match="clock"):
        run_group([], rounds=1, steps=1, clock="sundial")


def test_paired_ratio_and_comparison_targets():
    a, b = _case("slow (fast)", []), _case("base (fast)", [])
    ta, tb = Timing(a, wall=[2.0, 3.0, 4.0]), Timing(b, wall=[1.0, 2.0, 2.0])
    assert paired_ratio(ta, tb) == pytest.approx(2.0)  # median of 2.0, 1.5, 2.0
    rows = comparison_rows(
        [ta, tb],
        [
            Comparison("overhead", "slow (fast)", "base (fast)", 1.05),
            Comparison("speed-up", "base (fast)", "slow (fast)", 1.5, ">=", invert=True),
            Comparison("absent case is skipped", "nope", "base (fast)", 1.0),
        ],
    )
    assert [r["comparison"] for r in rows] == ["overhead", "speed-up"]
    assert rows[0]["met"] is False and rows[0]["missed_by"] == pytest.approx(0.95)
    assert rows[1]["met"] is True and rows[1]["kind"] == "throughput"


def test_cpu_clock_is_used_when_asked():
    t = Timing(_case("x", []), wall=[5.0, 5.0], cpu=[1.0, 3.0], clock="cpu")
    assert t.median == pytest.approx(2.0) and t.images_per_s == pytest.approx(1.0)


def test_results_file_has_environment_command_and_ratios(tmp_path):
    # Synthetic timings: the file format is under test, not this machine's clock.
    timings = [
        Timing(_case("a (fast)", []), wall=[0.012, 0.011], cpu=[0.012, 0.011]),
        Timing(_case("b (fast)", []), wall=[0.010, 0.010], cpu=[0.010, 0.010]),
    ]
    from senet.bench.report import case_rows

    result = {
        "suite": "unit", "command": "senet bench --unit", "started": "now", "seconds": 1.0,
        "load_start": load_average(), "load_end": load_average(), "environment": environment(),
        "cases": case_rows(timings), "comparisons": comparison_rows(timings, [Comparison("a vs b", "a (fast)", "b (fast)", 10.0)]),
    }  # fmt: skip
    js, md = write_results(result, tmp_path / "res")
    data = json.loads(js.read_text())
    for key in ("cpu", "cores", "python", "torch", "torchvision", "timm", "senet_git"):
        assert key in data["environment"]
    assert data["command"] == "senet bench --unit" and len(data["cases"]) == 2
    text = md.read_text()
    assert "senet bench --unit" in text and "a vs b" in text and "load average" in text
    table = format_table(data["cases"], data["comparisons"])
    assert "a (fast)" in table and "target <= 10.0: met" in table


def test_suites_are_known_and_unknown_names_are_refused():
    assert {"quick", "full"} <= set(SUITES)
    with pytest.raises(ValueError, match="quick"):
        build_suite("slowest", SuiteOptions())
    names = [g.name for g in build_suite("full", SuiteOptions())]
    assert any("infer b1 224 nchw" in n for n in names) and any("cifar loop" in n for n in names)
    assert any("train b16 224 cl" in n for n in names)


@pytest.mark.slow
def test_cases_build_models_from_every_source():
    assert isinstance(build_model("plain:cifar_se_resnet20"), PlainCifarResNet)
    assert build_model("cifar_resnet20").num_classes == 10
    with pytest.raises(ValueError, match="plain-loop"):
        build_model("plain:resnet50")
    c = infer_case("cifar_se_resnet20", 1, 16, "cl", "fast", "fused")
    c.step()
    t = train_case("cifar_se_resnet20", 2, 16, "nchw", "reference", num_classes=10)
    with t.active():
        t.step()
    with pytest.raises(ValueError, match="layout"):
        infer_case("cifar_resnet20", 1, 16, "nhwc")


def test_plain_loop_model_matches_ours_in_size():
    import senet

    ours = sum(p.numel() for p in senet.create_model("cifar_se_resnet20").parameters())
    plain = sum(p.numel() for p in PlainCifarResNet(3, True).parameters())
    assert ours == plain  # same network, different code path


def test_prepare_imagefolder_generates_a_tree(tmp_path):
    root = prepare_imagefolder(None, 20, tmp_path)
    assert len(list(root.glob("*/*.jpg"))) == 20 and len(list(root.iterdir())) == 10
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_imagefolder(tmp_path / "missing.tar.gz", 20, tmp_path)


def test_cli_rejects_contradictory_options(capsys):
    assert main(["bench", "--quick", "--suite", "full"]) == 2
    assert "contradict" in capsys.readouterr().err
    assert main(["bench", "--quick", "--groups", "no-such-group"]) == 2
    assert "no group" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_quick_runs_and_prints_its_table(tmp_path, capsys):
    before = torch.get_num_threads()
    start = time.perf_counter()
    try:
        code = main(["bench", "--quick", "--out", str(tmp_path / "quick")])
    finally:
        torch.set_num_threads(before)
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert code == 0
    assert "SE overhead" in out and "cifar_se_resnet20" in out and "plain:cifar_se_resnet20" in out
    data = json.loads((tmp_path / "quick.json").read_text())
    assert {c["path"] for c in data["cases"]} >= {"fast", "reference"}
    assert all(c["median_ms"] > 0 for c in data["cases"])
    print(f"senet bench --quick: {elapsed:.0f} s wall (reported, not asserted)")


def test_run_bench_filters_groups():
    with pytest.raises(ValueError, match="groups are"):
        run_bench("quick", SuiteOptions(timm=False), groups=["nothing-matches"])
