"""`senet models` and `senet complexity`: the real entry point in a subprocess, and bad input."""

from __future__ import annotations

import json

import pytest

from _helpers import one_line_error, run_senet
from senet.cli import main


@pytest.mark.slow
def test_models_command_lists_filters_and_tabulates() -> None:
    proc = run_senet("models")
    assert proc.returncode == 0, proc.stderr
    names = proc.stdout.split()
    assert len(names) >= 40 and "se_resnet50" in names and names == sorted(names)
    proc = run_senet("models", "*resnet20", "--table")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("| model | input | params |") and len(lines) == 4
    assert lines[2].startswith("| `cifar_resnet20` | 32 | 269,722 |")  # baseline first
    assert lines[3].startswith("| `cifar_se_resnet20` | 32 |")
    proc = run_senet("models", "se_resnet5*", "--plain")
    assert "no model matches 'se_resnet5*'" in one_line_error(proc, "models")


@pytest.mark.slow
def test_complexity_command_text_json_and_bad_input() -> None:
    proc = run_senet("complexity", "se_resnet50", "-o", "se_stages=1,2,3")
    assert proc.returncode == 0, proc.stderr
    assert "26,508,632" in proc.stdout and "+3.72%" in proc.stdout
    assert "(paper: 3.87 GFLOPs)" in run_senet("complexity", "se_resnet50").stdout
    row = json.loads(run_senet("complexity", "cifar_se_resnet20", "--res", 16, "--json").stdout)
    assert row["input_size"] == 16 and row["paper_gflops"] is None and row["params"] > 0
    err = one_line_error(run_senet("complexity", "se_resnet50", "--res", -3), "complexity")
    assert "input size -3 is too small" in err and "--res ≥ 32" in err
    # `-o se_stages=(1,2)`: SE in stages 1 and 2 if the option parser reads the parentheses,
    # else a one-line error naming the stages; never a traceback
    proc = run_senet("complexity", "se_resnet50", "-o", "se_stages=(1,2)")
    if proc.returncode == 0:
        assert "SE parameters              " in proc.stdout
    else:
        assert "stages (1, 2, 3, 4)" in one_line_error(proc, "complexity")
    err = one_line_error(run_senet("complexity", "se_resnt50"), "complexity")
    assert "did you mean se_resnet50" in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--res", "-3"], "input size -3 is too small for se_resnet18"),
        (["-o", "se_stages=x"], "names stage(s) ['x']"),
        (["-o", "se_stages=a,b"], "(give stage numbers: se_stages=1,2 on the command line)"),
        (["-o", "se_stages=7"], "se_stages=(7,) names stage(s) [7]"),
        (["-o", "reduction=abc"], "reduction='abc' must be a number"),
    ],
)
def test_complexity_bad_input_in_process(argv, message, capsys) -> None:
    """The same errors in the quick suite: exit 2, one line, no traceback."""
    assert main(["complexity", "se_resnet18", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_complexity_int_se_stages_in_process(capsys) -> None:
    assert main(["complexity", "cifar_se_resnet20", "-o", "se_stages=1"]) == 0
    assert "SE parameters" in capsys.readouterr().out
