"""Helpers shared by the tests: BN randomisation for equivalence tests, the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

#: the console entry point, as a subprocess runs it (``senet`` is ``python -m senet``'s ``main``)
SENET = [sys.executable, "-m", "senet"]


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (so BN is not identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return model.eval()


def run_senet(
    *args: object,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess:
    """``senet ARGS`` in a subprocess (one BLAS thread), output captured.

    tests/test_cli_coverage.py finds the commands tested end to end by the literal command names
    passed here, so start with them: ``run_senet("analyze", "excitations", ...)``.
    """
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [*SENET, *map(str, args)],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
        cwd=cwd,
    )


def one_line_error(proc: subprocess.CompletedProcess, command: str) -> str:
    """Bad input's contract: exit 2 and exactly one line ``senet COMMAND: error: ...``."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"senet {command}: error: "), proc.stderr
    return lines[0]
