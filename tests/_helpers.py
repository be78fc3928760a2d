"""Helpers shared by the tests: BN randomisation for equivalence tests, the CLI in a subprocess,
and the settings of a seconds-long training run (as a ``TrainConfig`` and as ``senet train`` words)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from senet.train import TrainConfig, get_recipe

#: the console entry point, as a subprocess runs it (``senet`` is ``python -m senet``'s ``main``)
SENET = [sys.executable, "-m", "senet"]

#: a seconds-long run: cifar_resnet20 on 16×16 images (the generated tree), fp32, no side output
TINY_TRAIN: dict[str, object] = {
    "model": "cifar_resnet20",
    "dataset": "imagefolder",
    "epochs": 3,
    "batch_size": 8,
    "lr": 0.05,
    "tensorboard": False,
    "threads": 1,
    "crop_padding": 2,
    "input_size": 16,
    "amp": "none",
    "progress": False,
}


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


def tiny_train_config(data: str | Path, out: str | Path, **overrides: object) -> TrainConfig:
    """The cifar recipe with ``TINY_TRAIN`` and ``overrides`` (a None override keeps the recipe's value)."""
    return get_recipe(
        "cifar", **{**TINY_TRAIN, "data_dir": str(data), "out": str(out), **overrides}
    )


def cli_options(**options: object) -> list[str]:
    """``--name value`` per option, in order: True gives ``--name``, False ``--no-name``, None nothing."""
    words: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value is False:
            words.append("--no-" + flag[2:])
        elif value is not None:
            words += [flag, str(value)]
    return words


def train_args(
    data: str | Path,
    out: str | Path | None,
    *extra: str,
    recipe: str | None = "cifar",
    model: str | None = "cifar_resnet20",
    **options: object,
) -> list[str]:
    """The words after ``senet train``: recipe, model, image folders DATA, OPTIONS, OUT, EXTRA."""
    return [
        *cli_options(
            recipe=recipe, model=model, dataset="imagefolder", data_dir=data, **options, out=out
        ),
        *extra,
    ]


def tiny_train_args(
    data: str | Path,
    out: str | Path | None,
    *extra: str,
    epochs: int | None = 2,
    batch_size: int | None = 8,
    lr: float | None = 0.05,
    train_subset: int | None = 24,
    val_subset: int | None = 6,
    input_size: int | None = 16,
    crop_padding: int | None = 2,
    threads: int | None = 1,
    tensorboard: bool | None = False,
    amp: str | None = "none",
    **options: object,
) -> list[str]:
    """``train_args`` of a seconds-long cifar_resnet20 run in fp32 (an option set to None is left out)."""
    return train_args(
        data,
        out,
        *extra,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        train_subset=train_subset,
        val_subset=val_subset,
        input_size=input_size,
        crop_padding=crop_padding,
        threads=threads,
        tensorboard=tensorboard,
        amp=amp,
        **options,
    )
