"""`senet bench` and the benchmark library (issue 7). Timing values are never asserted."""

from __future__ import annotations

import json
import time

import pytest
import torch

from _helpers import run_senet
from senet.bench import format_table, run_bench, write_results
from senet.bench.cases import Case, build_model, infer_case, train_case
from senet.bench.env import environment, load_average
from senet.bench.plain_loop import PlainCifarResNet, prepare_imagefolder
from senet.bench.report import comparison_rows
from senet.bench.runner import Timing, median_ratio_ci, paired_ratio, run_group
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


def test_median_ratio_interval_brackets_the_median_and_narrows_with_rounds():
    import random
    import statistics

    rng = random.Random(1)
    den = [1.0] * 200
    num = [1.03 + rng.gauss(0, 0.03) for _ in den]
    few, many = median_ratio_ci(num[:11], den[:11]), median_ratio_ci(num, den)
    assert few[0] <= statistics.median(num[:11]) <= few[1]
    assert many[0] <= statistics.median(num) <= many[1]
    assert many[1] - many[0] < few[1] - few[0], "more rounds, a narrower interval"
    assert many[0] > 1.0, "200 rounds around 1.03 ± 0.03 exclude 1"
    assert median_ratio_ci(num, den) == many, "seeded: the same times give the same interval"
    assert median_ratio_ci([2.0, 2.0], [1.0, 1.0]) == (2.0, 2.0)
    with pytest.raises(ValueError, match="same number"):
        median_ratio_ci([1.0], [1.0, 2.0])


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
        "suite": "unit",
        "command": "senet bench --unit",
        "started": "now",
        "seconds": 1.0,
        "load_start": load_average(),
        "load_end": load_average(),
        "environment": environment(),
        "cases": case_rows(timings),
        "comparisons": comparison_rows(
            timings, [Comparison("a vs b", "a (fast)", "b (fast)", 10.0)]
        ),
    }
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
    assert {"quick", "settings", "full"} <= set(SUITES)
    with pytest.raises(ValueError, match="quick"):
        build_suite("slowest", SuiteOptions())
    names = [g.name for g in build_suite("full", SuiteOptions())]
    assert any("infer b1 224 nchw" in n for n in names) and any("cifar loop" in n for n in names)
    assert any("train b16 224 cl" in n for n in names)


def test_settings_suite_covers_every_setting_with_the_target_ratios():
    groups = build_suite("settings", SuiteOptions())
    settings = {"fp32 NCHW", "fp32 CL", "bf16 NCHW", "bf16 CL"}
    for kind in ("cifar train b128", "train b16 224", "infer b1 224"):
        assert {g.name.split(f"{kind} ")[1] for g in groups if g.name.startswith(kind)} == settings
    comps = [c for g in groups for c in g.comparisons]
    assert all(c.row and c.setting in settings for c in comps)
    targets = {(c.row.split(":")[0], c.target) for c in comps if c.target is not None}
    assert ("CIFAR training b128", 1.05) in targets and ("224px inference b1", 1.02) in targets
    assert any("optimize_for_inference ÷ timm" in c.row and c.target == 0.8 for c in comps)
    cast_rows = {c.setting for c in comps if c.den == "timm:seresnet50 [cast] (-)"}
    assert cast_rows == {"bf16 NCHW", "bf16 CL"}, "timm cast to bf16: a reference in bf16 only"
    native_rows = {(c.row.split(":")[0], c.setting) for c in comps if "(aten)" in c.num + c.den}
    assert native_rows == {
        (row, st) for row in ("CIFAR training b128", "224px training b16") for st in settings
    }, "native kernels against ATen only in training, in every setting"
    quick = build_suite("quick", SuiteOptions())
    assert {g.name.rsplit(" ", 2)[-2] + " " + g.name.rsplit(" ", 1)[-1] for g in quick} == {
        "fp32 NCHW",
        "bf16 CL",
    }


def _settings_result() -> dict[str, object]:
    """A results dict with synthetic timings in two settings (the format is under test)."""
    from senet.bench.report import case_rows

    timings, comps = [], []
    for amp, layout, se_time in (("none", "nchw", 0.0104), ("bf16", "cl", 0.0110)):
        a = _case("se (fast)", [])
        b = _case("plain (fast)", [])
        a.amp = b.amp = amp
        a.layout = b.layout = layout
        ta = Timing(a, wall=[se_time] * 3, cpu=[se_time] * 3)
        tb = Timing(b, wall=[0.010] * 3, cpu=[0.010] * 3)
        st = a.setting
        rows = comparison_rows(
            [ta, tb],
            [
                Comparison(
                    f"overhead {st}",
                    "se (fast)",
                    "plain (fast)",
                    1.05,
                    row="SE ÷ plain",
                    setting=st,
                ),
                Comparison(f"info {st}", "plain (fast)", "se (fast)", row="plain ÷ SE", setting=st),
            ],
        )
        timings += [ta, tb]
        comps += rows
    return {
        "suite": "unit",
        "command": "senet bench --unit",
        "started": "now",
        "seconds": 1.0,
        "load_start": None,
        "load_end": None,
        "environment": environment(),
        "clock": "cpu",
        "cases": case_rows(timings),
        "comparisons": comps,
    }


def test_settings_table_puts_settings_side_by_side_with_met_and_missed(tmp_path):
    from senet.bench.report import settings_table_markdown, settings_table_text, update_readme

    result = _settings_result()
    text = settings_table_text(result["comparisons"])
    header, se_row, info_row = text.splitlines()
    assert header.index("fp32 NCHW") < header.index("bf16 CL")
    assert "1.040 met" in se_row and "1.100 MISSED" in se_row and "<= 1.05" in se_row
    assert "0.962" in info_row and "met" not in info_row
    md = settings_table_markdown(result)
    assert environment()["cpu_summary"] in md and "senet bench --unit" in md
    assert "| SE ÷ plain | <= 1.05 | 1.040 met | 1.100 MISSED |" in md
    # the README block is written between markers, and replaced (not appended) the second time
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nintro\n\n## Later section\n")
    update_readme(result, readme)
    update_readme(result, readme)
    body = readme.read_text()
    assert body.count("senet bench settings table: start") == 1 and "## Later section" in body
    assert body.index("intro") < body.index("SE ÷ plain")
    with pytest.raises(ValueError, match="settings table"):
        update_readme({**result, "comparisons": []}, readme)


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
    for mode in ("fused", "optimized", "cast"):  # bf16: weights stored in bf16, no autocast casts
        infer_case("cifar_se_resnet20", 1, 16, "cl", "fast", mode, amp="bf16").step()
    with pytest.raises(ValueError, match="bf16 only"):
        infer_case("cifar_resnet20", 1, 16, "nchw", "fast", "cast")


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
        code = main(
            [
                "bench",
                "--quick",
                "--out",
                str(tmp_path / "quick"),
                "--update-readme",
                str(tmp_path / "README.md"),
            ]
        )
    finally:
        torch.set_num_threads(before)
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert code == 0
    assert "SE overhead" in out and "cifar_se_resnet20" in out and "plain:cifar_se_resnet20" in out
    assert out.startswith("CPU: ") and "torch capability" in out
    assert "settings side by side" in out and "bf16 CL" in out
    assert "settings table: start" in (tmp_path / "README.md").read_text()
    data = json.loads((tmp_path / "quick.json").read_text())
    assert {c["path"] for c in data["cases"]} >= {"fast", "reference"}
    assert all(c["median_ms"] > 0 for c in data["cases"])
    print(f"senet bench --quick: {elapsed:.0f} s wall (reported, not asserted)")


def test_run_bench_filters_groups():
    with pytest.raises(ValueError, match="groups are"):
        run_bench("quick", SuiteOptions(timm=False), groups=["nothing-matches"])


@pytest.mark.slow
def test_bench_cli_subprocess_writes_results_and_readme(tmp_path):
    """The real entry point, one tiny group: exit 0, results files, README table, CPU named."""

    readme = tmp_path / "README.md"
    out = run_senet(
        "bench",
        "--quick",
        "--no-timm",
        "--groups",
        "cifar train b4 bf16 CL",
        "--out",
        tmp_path / "r",
        "--update-readme",
        readme,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("CPU: ")
    data = json.loads((tmp_path / "r.json").read_text())
    assert {c["setting"] for c in data["cases"]} == {"bf16 CL"}
    assert data["environment"]["cpu_capability"]
    assert "CIFAR training b4: SE-ResNet-20 ÷ ResNet-20" in readme.read_text()
    bad = run_senet("bench", "--quick", "--groups", "nothing", timeout=120)
    assert (
        bad.returncode == 2
        and "senet bench: error:" in bad.stderr
        and "Traceback" not in bad.stderr
    )
