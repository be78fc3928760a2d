"""torchrun + DDP (gloo, CPU): a 2-process run completes and agrees with one process.

Both runs train in fp32 (``--amp none``: bf16 kernels may round differently at another batch
size) and see the same global batches (the in-memory loader cuts each global batch of 16 into two
slices of 8) and DDP averages the gradients, so the only difference is BatchNorm: each process
normalises over its own 8 images instead of all 16 (SyncBatchNorm needs CUDA). Stated tolerances:

- BatchNorm frozen (``--freeze-bn-epochs`` = all epochs, so BN is a fixed affine map): the two runs
  compute the same function; per-epoch training loss within 1e-4 relative and final weights within
  1e-4 (float32 summation order of the gradient all-reduce is the only difference).
- BatchNorm training normally: final training loss within 0.35 absolute (a three-class problem
  starting near ln 3 ≈ 1.1; per-process batch statistics over 8 images move the trajectory, and in
  a measured run epoch 2's losses were 0.0001 vs 0.49) and final validation top-1 error within 25
  points; both runs must learn. This is a smoke test of the BN case, not a precision claim.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers import tiny_train_args

LOSS_TOL = 0.35
ERR_TOL = 25.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# torchrun runs this instead of ``-m senet`` where a test also wants to know what outlived the run
_REPORTING_MAIN = """
import gc, sys, torch
from senet.cli import main
code = main(sys.argv[1:])
ddp = torch.nn.parallel.DistributedDataParallel
alive = sum(isinstance(o, ddp) for o in gc.get_objects())
print(f"DDP wrappers alive after the run: {alive}", flush=True)
sys.exit(code)
"""


def _run_pair(
    tmp_path: Path, data: Path, extra: list[str], report: bool = False
) -> tuple[subprocess.CompletedProcess, ...]:
    args = tiny_train_args(
        data,
        None,
        "--no-channels-last",
        *extra,
        epochs=3,
        batch_size=16,
        lr=None,
        train_subset=None,
        val_subset=None,
    )
    common = ["train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "senet", *common, "--out", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    entry = ["-m", "senet"]
    if report:
        script = tmp_path / "reporting_main.py"
        script.write_text(_REPORTING_MAIN)
        entry = [str(script)]
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master-port={_free_port()}",
        *entry,
    ]
    two = subprocess.run(
        [*torchrun, *common, "--out", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    return one, two


@pytest.mark.slow
def test_two_process_gloo_run_is_exact_with_frozen_batchnorm(
    tmp_path: Path, imagefolder_factory
) -> None:
    import torch
    from safetensors.torch import load_file

    data = imagefolder_factory(tmp_path / "d", n_train=16, n_val=8, seed=2)
    _, two = _run_pair(tmp_path, data, ["--lr", "0.01", "--freeze-bn-epochs", "3"], report=True)
    # the DDP wrapper (and its hold on the process group) is freed before the process group is
    # destroyed, not during interpreter shutdown, where rank 1 once died with SIGABRT
    assert two.stdout.count("DDP wrappers alive after the run: 0") == 2, two.stdout[-2000:]
    h1 = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").open()]
    h2 = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").open()]
    for a, b in zip(h1, h2, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4, abs=1e-6)
    w1, w2 = (load_file(str(tmp_path / r / "model.safetensors")) for r in ("one", "two"))
    for k in w1:
        assert torch.allclose(w1[k].float(), w2[k].float(), atol=1e-4, rtol=1e-4), k


@pytest.mark.slow
def test_two_process_gloo_run_matches_single_process(tmp_path: Path, imagefolder_factory) -> None:
    data = imagefolder_factory(tmp_path / "d", n_train=48, n_val=16, seed=1)
    _, two = _run_pair(tmp_path, data, ["--lr", "0.05"])
    # only rank 0 wrote: one summary line, one set of files
    assert two.stdout.count("done:") == 1
    cfg = json.loads((tmp_path / "two" / "config.json").read_text())
    assert cfg["world_size"] == 2
    h1 = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").open()]
    h2 = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").open()]
    assert len(h1) == len(h2) == 3
    for a, b in zip(h1, h2):
        assert a["lr"] == b["lr"]
    assert abs(h1[-1]["train_loss"] - h2[-1]["train_loss"]) < LOSS_TOL, (h1[-1], h2[-1])
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert s2["world_size"] == 2 and s2["val_images"] == s1["val_images"] == 48
    assert abs(s1["val_top1_err"] - s2["val_top1_err"]) <= ERR_TOL, (s1, s2)
    assert h2[-1]["train_loss"] < h2[0]["train_loss"]
