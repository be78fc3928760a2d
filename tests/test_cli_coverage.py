"""Every `senet` command is tested end to end: a command without a subprocess test fails here.

A shipped command once crashed while every test passed (``senet ablate`` read an option its parser
never defined): only running the real entry point catches that. This test walks the argparse tree
and looks, in the test files, for a subprocess run of each command — ``run_senet("CMD", ...)``
(tests/_helpers.py) or ``[*SENET, "CMD", ...]`` with the command's literal name.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from senet.cli import build_parser

TESTS = Path(__file__).resolve().parent
CALL = re.compile(r"""(?:run_senet\(|\*SENET,)\s*"([\w-]+)"(?:\s*,\s*"([\w-]+)")?""")


def commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Every runnable command path: ``("train",)``, ``("analyze", "excitations")``, ..."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = commands(sub, (*prefix, name))
                found.extend(nested or [(*prefix, name)])
    return found


def commands_run_by_tests() -> set[tuple[str, ...]]:
    seen: set[tuple[str, ...]] = set()
    for path in TESTS.glob("test_*.py"):
        for first, second in CALL.findall(path.read_text()):
            seen.add((first,))
            if second:
                seen.add((first, second))
    return seen


def test_every_command_has_a_subprocess_test() -> None:
    all_commands = commands(build_parser())
    assert ("train",) in all_commands and ("analyze", "excitations") in all_commands
    missing = [" ".join(c) for c in all_commands if c not in commands_run_by_tests()]
    assert not missing, (
        f"no end-to-end test runs `senet {'`, `senet '.join(missing)}`: add one that calls "
        'run_senet("COMMAND", ...) from tests/_helpers.py on tiny data and checks its exit code and files'
    )


def test_the_installed_console_script_runs() -> None:
    """`senet` itself (the console script pip writes), not only `python -m senet`."""
    script = Path(sys.executable).parent / "senet"
    if not script.is_file():  # not installed into this interpreter's environment
        import pytest

        pytest.skip(f"no console script at {script} (package not installed with pip)")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and all(c[0] in done.stdout for c in commands(build_parser()))
