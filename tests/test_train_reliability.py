"""Runs that survive: the run-directory lock, checkpoints verified with an older copy to fall back
on, and mid-epoch resume that is bitwise exact with file data and DataLoader workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _helpers import SENET, tiny_train_config, train_args
from senet.data.loaders import FileBatchLoader, default_workers
from senet.train import TrainLog, train
from senet.train.checkpoint import PREVIOUS, load_checkpoint, load_latest
from senet.train.rundir import LOCK_NAME, RunLock, RunLockedError


class Notes(TrainLog):
    """Collects the messages; optionally sends SIGTERM to this process after a given step."""

    def __init__(self, stop_at: tuple[int, int] | None = None) -> None:
        self.lines: list[str] = []
        self.stop_at = stop_at

    def message(self, text: str) -> None:
        self.lines.append(text)

    def step(self, epoch: int, step: int, steps: int, sums: torch.Tensor) -> None:
        if (epoch, step) == self.stop_at:
            signal.raise_signal(signal.SIGTERM)  # the run's handler: stop after the next step


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# --------------------------------------------------------------------------------------------
# the lock
# --------------------------------------------------------------------------------------------
def test_second_trainer_on_a_locked_directory_exits_with_one_line(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with RunLock(out):
        done = subprocess.run(
            [*SENET, "train", *train_args(tiny_imagefolder, out, epochs=1)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        errors = [line for line in done.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"pid {os.getpid()} on {socket.gethostname()}" in errors[0] and "in use" in errors[0]
        assert not (out / "config.json").exists()
    assert not (out / LOCK_NAME).exists()  # released


def test_lock_in_process_refuses_a_second_holder(tmp_path: Path) -> None:
    with RunLock(tmp_path), pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()


def test_stale_lock_of_a_dead_process_is_taken_over(tiny_imagefolder: Path, tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname()}))
    notes = Notes()
    summary = train(tiny_train_config(tiny_imagefolder, out, epochs=1), log=notes)
    assert summary["status"] == "finished"
    assert any("took over the stale lock" in n and f"pid {gone.pid}" in n for n in notes.lines)
    assert not (out / LOCK_NAME).exists()


# --------------------------------------------------------------------------------------------
# checkpoints: verified, with an older copy
# --------------------------------------------------------------------------------------------
def test_truncated_checkpoint_falls_back_to_the_older_one(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    train(tiny_train_config(tiny_imagefolder, tmp_path / "straight"))
    out = tmp_path / "run"
    train(tiny_train_config(tiny_imagefolder, out, stop_after_epochs=2))
    assert load_checkpoint(out / PREVIOUS)["epoch"] == 1
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    notes = Notes()
    train(tiny_train_config(tiny_imagefolder, out, resume=True), log=notes)
    warning = [n for n in notes.lines if n.startswith("warning:")]
    assert len(warning) == 1 and "truncated" in warning[0] and PREVIOUS in warning[0], notes.lines
    assert "miniz" not in warning[0] and "\n" not in warning[0]
    assert _same_weights(tmp_path / "straight", out)  # epoch 2 trained again, to the same bits


def test_corrupt_bytes_fail_the_digest_and_both_bad_is_one_error(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train(tiny_train_config(tiny_imagefolder, out, stop_after_epochs=2))
    path = out / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensors: torch.load still succeeds
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is corrupt"):
        load_checkpoint(path)
    assert load_latest(out, warn=lambda text: None)["epoch"] == 1
    (out / PREVIOUS).write_bytes(b"")
    with pytest.raises(ValueError, match="no readable checkpoint is left") as err:
        load_latest(out)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------
# file data: one DataLoader, per-sample seeds, bitwise mid-epoch resume with workers
# --------------------------------------------------------------------------------------------
def test_file_loader_builds_its_dataloader_once(tiny_imagefolder: Path) -> None:
    from senet.data import build_dataset, build_loader

    data = build_dataset("imagefolder", tiny_imagefolder, "train", in_memory=False)
    loader = build_loader(data, 8, train=True, augment="crop_flip", input_size=16, workers=0)
    assert isinstance(loader, FileBatchLoader) and 1 <= default_workers() <= 8
    first = [x for x, _ in loader.iterate(0)]
    dl = loader._loader
    loader.set_epoch(1)
    again = [x for x, _ in loader.iterate(2)]
    assert loader._loader is dl and len(again) == len(first) - 2
    loader.set_epoch(0)
    assert torch.equal(next(iter(loader.iterate(3)))[0], first[3])  # position-independent


@pytest.mark.slow
def test_file_data_mid_epoch_resume_with_two_workers_is_bitwise(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    kw = {"in_memory": False, "workers": 2, "epochs": 2}
    train(tiny_train_config(tiny_imagefolder, tmp_path / "straight", **kw))
    notes = Notes(stop_at=(0, 3))  # SIGTERM after step 3 of epoch 1: stops after step 4
    part = train(tiny_train_config(tiny_imagefolder, tmp_path / "b", **kw), log=notes)
    assert (part["status"], part["epoch"], part["step"]) == ("interrupted", 0, 5)
    train(tiny_train_config(tiny_imagefolder, tmp_path / "b", resume=True, **kw))
    assert _same_weights(tmp_path / "straight", tmp_path / "b")


def test_failed_start_leaves_no_empty_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(tiny_train_config(tmp_path / "no-data", out))
    assert not out.exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        train(tiny_train_config(tmp_path / "no-data", tmp_path / "file"))
