"""``senet train`` and ``senet recipes`` through the real entry point (``python -m senet``), on tiny
generated data: exit codes, output files, the lock, --config, extending with --resume, fine-tuning
from a local weights file, and the recipe chosen from the data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _helpers import run_senet, tiny_train_args, train_args
from senet.train.rundir import RunLock

RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "metrics.csv",
    "checkpoint.pt",
    "model.safetensors",
    "summary.json",
)


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_recipes_lists_and_shows_one() -> None:
    listing = run_senet("recipes")
    assert listing.returncode == 0 and all(
        name in listing.stdout for name in ("imagenet", "cifar", "mobile", "senet154", "digits")
    )
    one = run_senet("recipes", "cifar")
    assert one.returncode == 0
    cfg = json.loads(one.stdout.split("\n", 2)[2])
    assert cfg["milestone_epochs"] == [82.0, 123.0] and cfg["amp"] == "auto"
    bad = run_senet("recipes", "cifr")
    assert bad.returncode == 2 and "did you mean cifar" in bad.stderr


@pytest.mark.slow
def test_bad_model_option_is_one_line(tiny_imagefolder: Path, tmp_path: Path) -> None:
    done = run_senet(
        "train", *tiny_train_args(tiny_imagefolder, tmp_path / "o", "-o", "se_stages=(1,2")
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "unbalanced brackets" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_train_writes_the_run_and_a_second_trainer_is_locked_out(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    done = run_senet("train", *tiny_train_args(tiny_imagefolder, out))
    assert done.returncode == 0, done.stderr
    assert all((out / name).is_file() for name in RUN_FILES) and not (out / "train.lock").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["precision"].startswith("fp32")
    with RunLock(out):
        locked = run_senet(
            "train", *tiny_train_args(tiny_imagefolder, out, "--resume", "--epochs", "3")
        )
    assert locked.returncode == 2 and f"pid {os.getpid()}" in locked.stderr
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2  # untouched


@pytest.mark.slow
def test_resume_extends_and_config_reruns(tiny_imagefolder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run_senet("train", *tiny_train_args(tiny_imagefolder, out)).returncode == 0
    again = run_senet("train", "--resume", "--out", str(out))
    assert again.returncode == 2 and "--epochs M (M > 2) extends it" in again.stderr
    assert "Traceback" not in again.stderr
    longer = run_senet("train", "--resume", "--out", str(out), "--epochs", "3")
    assert longer.returncode == 0, longer.stderr
    assert "extending the run from 2 to 3 epochs" in longer.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    assert len(rows) == 3 and rows[2]["lr"] == pytest.approx(rows[1]["lr"] / 10)
    assert json.loads((out / "summary.json").read_text())["epochs"] == 3
    rerun = run_senet(
        "train", "--config", str(out / "config.json"), "--out", str(tmp_path / "rerun")
    )
    assert rerun.returncode == 0, rerun.stderr
    assert same_weights(out, tmp_path / "rerun")  # the saved config (3 epochs, span 2) re-runs


@pytest.mark.slow
def test_fine_tune_from_a_local_weights_file(
    tiny_imagefolder: Path, tmp_path: Path, imagefolder_factory
) -> None:
    source = tmp_path / "source"
    first = run_senet("train", *tiny_train_args(tiny_imagefolder, source, "--epochs", "1"))
    assert first.returncode == 0
    two = imagefolder_factory(tmp_path / "two", classes=("a", "b"), n_train=8, n_val=2)
    out = tmp_path / "ft"
    args = tiny_train_args(
        two, out, "--epochs", "1", "--init", str(source / "model.safetensors"), "--freeze-backbone"
    )
    done = run_senet("train", *args)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["started_from"] == f"weights file {source / 'model.safetensors'}"
    assert summary["trainable_params"] == 64 * 2 + 2
    src, new = (
        load_file(str(source / "model.safetensors")),
        load_file(str(out / "model.safetensors")),
    )
    assert torch.equal(src["layer3.2.conv2.weight"], new["layer3.2.conv2.weight"])


@pytest.mark.slow
def test_imagefolder_without_recipe_trains_with_imagenet_preprocessing(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = train_args(
        tiny_imagefolder,
        out,
        recipe=None,
        model="resnet18",
        epochs=1,
        batch_size=8,
        input_size=16,
        eval_resize=18,
        workers=0,
        tensorboard=False,
        threads=1,
    )
    done = run_senet("train", *args)
    assert done.returncode == 0, done.stderr
    assert "recipe: imagenet (the default for --dataset imagefolder" in done.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["recipe"] == "imagenet" and cfg["augment"] == "rrc_flip"
    from senet.interop.weights_file import read_weights

    meta = read_weights(out / "model.safetensors")[1]
    assert (meta["in_chans"], meta["std"], meta["resize"]) == (3, [1.0, 1.0, 1.0], 18)
