"""Interleaved timing: every case of a group runs in turn, round after round, so that the noise of
a shared machine falls on all of them alike; results are medians and paired ratios."""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from senet.bench.cases import Case

CLOCKS = ("wall", "cpu")


@dataclass
class Timing:
    """Per-step seconds of one case, one entry per round, on the wall clock and in process CPU time.

    ``clock`` picks the one that medians and ratios use. Process CPU time (user + system, all
    threads) is what the step cost this process; on a machine shared with other jobs it is far
    less noisy than wall time, but it counts OpenMP threads spinning at barriers as work, so use
    it with ``--threads 1``.
    """

    case: Case
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    clock: str = "wall"

    @property
    def seconds(self) -> list[float]:
        return self.cpu if self.clock == "cpu" else self.wall

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def images_per_s(self) -> float:
        return self.case.images / self.median


def time_steps(case: Case, steps: int) -> tuple[float, float]:
    """Wall and process-CPU seconds per step of ``case``, averaged over ``steps`` consecutive steps."""
    with case.active():
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            case.step()
        return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps


def run_group(
    cases: Sequence[Case],
    rounds: int,
    steps: int,
    warmup: int = 1,
    log: Callable[[str], None] | None = None,
    clock: str = "wall",
) -> list[Timing]:
    """Warm every case up, then ``rounds`` round-robin rounds of ``steps`` steps each."""
    if rounds < 1 or steps < 1:
        raise ValueError(f"rounds={rounds} and steps={steps} must both be ≥ 1")
    if clock not in CLOCKS:
        raise ValueError(f"clock {clock!r} is not supported; choose wall or cpu")
    timings = [Timing(c, clock=clock) for c in cases]
    for c in cases:
        c.extra["threads"] = torch.get_num_threads()
    for c in cases:
        with c.active():
            for _ in range(warmup):
                c.step()
    for r in range(rounds):
        order = (
            timings if r % 2 == 0 else timings[::-1]
        )  # alternate the order: no case always goes first
        for t in order:
            gc.collect()
            wall, cpu = time_steps(t.case, steps)
            t.wall.append(wall)
            t.cpu.append(cpu)
        if log:
            log(
                f"  round {r + 1}/{rounds}: "
                + ", ".join(f"{t.case.label} {t.seconds[-1] * 1e3:.1f} ms" for t in timings)
            )
    return timings


def paired_ratio(num: Timing, den: Timing) -> float:
    """Median over rounds of ``num``'s time ÷ ``den``'s time in the same round (>1: num is slower)."""
    return statistics.median(a / b for a, b in zip(num.seconds, den.seconds))


def median_ratio_ci(
    num: list[float], den: list[float], level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median of the per-round ratios ``num[i] / den[i]``
    (rounds resampled with replacement; seeded, so the same times give the same interval)."""
    if len(num) != len(den) or not num:
        raise ValueError("median_ratio_ci needs the same number (> 0) of rounds on both sides")
    ratios = [a / b for a, b in zip(num, den)]
    rng = random.Random(seed)
    medians = sorted(
        statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples)
    )
    tail = (1.0 - level) / 2
    return medians[int(tail * (resamples - 1))], medians[int((1.0 - tail) * (resamples - 1))]


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
