"""``senet bench``: SE models against their plain baselines, timm and a plain-loop reference,
interleaved in one run on one machine (issue 7). See benchmarks/README.md for the numbers."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone

import torch

from senet.bench.env import environment, load_average
from senet.bench.report import case_rows, comparison_rows, format_table, write_results
from senet.bench.runner import Timing, run_group
from senet.bench.suites import SUITES, SuiteOptions, build_suite

__all__ = ["SUITES", "SuiteOptions", "format_table", "run_bench", "write_results"]


def run_bench(
    suite: str = "quick",
    options: SuiteOptions | None = None,
    groups: list[str] | None = None,
    rounds: int | None = None,
    steps: int | None = None,
    log: Callable[[str], None] | None = None,
    command: str | None = None,
    clock: str = "wall",
) -> dict[str, object]:
    """Run suite ``suite`` group by group (cases interleaved within a group); return the results.

    ``groups`` keeps only groups whose name contains one of the given strings; ``rounds``/``steps``
    override the suite's.
    """
    options = options or SuiteOptions()
    chosen = build_suite(suite, options)
    if groups:
        chosen = [g for g in chosen if any(s in g.name for s in groups)]
        if not chosen:
            names = ", ".join(g.name for g in build_suite(suite, SuiteOptions(timm=options.timm)))
            raise ValueError(f"no group of suite {suite!r} matches {groups}; groups are: {names}")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_start, t0 = load_average(), time.perf_counter()
    all_cases, all_comps, errors = [], [], []
    try:
        for g in chosen:
            if log:
                log(f"[{g.name}] building cases")
            try:
                cases = g.build()
            except (RuntimeError, ValueError, FileNotFoundError, ImportError) as err:
                # a group that cannot run (missing data, a model that does not trace) is
                # reported; it must not lose the groups already timed
                errors.append({"group": g.name, "error": f"{type(err).__name__}: {err}"})
                if log:
                    log(f"[{g.name}] skipped: {type(err).__name__}: {err}")
                continue
            threads = torch.get_num_threads()
            if g.threads:
                torch.set_num_threads(g.threads)
            try:
                timings: list[Timing] = run_group(
                    cases, rounds or g.rounds, steps or g.steps, log=log, clock=g.clock or clock
                )
            finally:
                torch.set_num_threads(threads)
            all_cases += case_rows(timings)
            all_comps += comparison_rows(timings, g.comparisons)
            del cases, timings
    finally:
        shutil.rmtree(options.workdir, ignore_errors=True)
    return {
        "suite": suite,
        "command": command or shlex.join(sys.argv),
        "started": started,
        "seconds": round(time.perf_counter() - t0, 1),
        "clock": clock,
        "load_start": load_start,
        "load_end": load_average(),
        "environment": environment(),
        "data_dir": options.data_dir,
        "cases": all_cases,
        "comparisons": all_comps,
        "errors": errors,
    }
