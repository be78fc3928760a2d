"""senet.train: recipes, schedules, the loop's results, resume, bad input, and the CLI."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from _helpers import SENET, tiny_train_config, train_args
from senet.cli import main as cli_main
from senet.cli.eval import _eval
from senet.train import RECIPES, NonFiniteLossError, TrainConfig, get_recipe, train
from senet.train.checkpoint import load_checkpoint
from senet.train.schedule import LRSchedule

REPO = Path(__file__).resolve().parents[1]


def tiny_config(data: Path, out: Path, **kw: object) -> TrainConfig:
    """The shared tiny run (three epochs) at the recipe's own amp and progress settings."""
    return tiny_train_config(data, out, **{"amp": None, "progress": None, **kw})


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


# --------------------------------------------------------------------------------------------
# recipes and schedules
# --------------------------------------------------------------------------------------------
def test_recipes_follow_the_paper() -> None:
    assert set(RECIPES) >= {"imagenet", "cifar", "mobile", "senet154", "digits"}
    im = get_recipe("imagenet")
    assert (im.batch_size, im.effective_lr, im.epochs, im.step, im.weight_decay) == (
        1024,
        0.6,
        100,
        30,
        1e-4,
    )
    assert (im.augment, im.input_size, im.eval_resize, im.normalize) == (
        "rrc_flip",
        224,
        256,
        "mean",
    )
    assert get_recipe("imagenet", batch_size=256).effective_lr == pytest.approx(
        0.15
    )  # linear scaling
    assert get_recipe("imagenet", batch_size=256, lr=0.1).effective_lr == 0.1
    cf = get_recipe("cifar")
    assert cf.milestone_epochs == (82, 123) and cf.effective_lr == 0.1 and cf.batch_size == 128
    assert get_recipe("cifar", epochs=10).milestone_epochs == (5, 7.5)
    s154 = get_recipe("senet154")
    assert (
        s154.label_smoothing == 0.1
        and s154.effective_lr == pytest.approx(1.0)
        and s154.batch_size == 2048
    )
    assert get_recipe("senet154", batch_size=512).effective_lr == pytest.approx(0.25)
    assert get_recipe("mobile").schedule == "plateau"


def test_recipe_errors_suggest() -> None:
    with pytest.raises(ValueError, match="unknown recipe 'cifr'; did you mean cifar"):
        get_recipe("cifr")
    with pytest.raises(ValueError, match="did you mean batch_size"):
        get_recipe("cifar", batchsize=3)
    with pytest.raises(ValueError, match="schedule='exponential' is not supported"):
        get_recipe("cifar", schedule="exponential")


def test_config_round_trips_through_json() -> None:
    cfg = get_recipe("digits", seed=3, milestones=[2, 4])
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == dataclasses.replace(cfg, out=cfg.out_dir)  # to_dict resolves the default out


def test_schedules() -> None:
    cfg = get_recipe("imagenet", epochs=100)
    s = LRSchedule(cfg, 10)
    assert [s.lr(e, 0) for e in (0, 29, 30, 60, 90)] == pytest.approx(
        [0.6, 0.6, 0.06, 0.006, 0.0006]
    )
    s = LRSchedule(get_recipe("cifar", epochs=8), 10)
    assert [s.lr(e, 0) for e in (0, 3, 4, 5, 6, 7)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    s = LRSchedule(get_recipe("cifar", epochs=4, constant_warmup_iters=15), 10)
    assert (s.lr(0, 0), s.lr(1, 4), s.lr(1, 5)) == (0.01, 0.01, pytest.approx(0.1))
    s = LRSchedule(get_recipe("cifar", epochs=10, schedule="cosine", warmup_epochs=2), 10)
    assert s.lr(0, 0) == pytest.approx(0.1 / 20) and s.lr(2, 0) == pytest.approx(0.1)
    assert s.lr(6, 0) == pytest.approx(0.05) and s.lr(9, 9) < 0.001
    p = LRSchedule(get_recipe("mobile", plateau_patience=1), 10)
    for loss in (1.0, 0.9, 0.9, 0.9):
        p.epoch_end(loss)
    assert p.lr(4, 0) == pytest.approx(0.01)


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_short_run_learns_and_writes_the_run_directory(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    summary = train(tiny_config(tiny_imagefolder, out, epochs=4, tensorboard=True))
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 4 and summary["status"] == "finished"
    assert min(h["train_loss"] for h in history[1:]) < 0.5 * history[0]["train_loss"]
    assert summary["val_top1_err"] < 50  # three classes: chance is 66.7% error
    for name in (
        "config.json",
        "metrics.csv",
        "checkpoint.pt",
        "model.safetensors",
        "summary.json",
        "curves.png",
    ):
        assert (out / name).exists(), name
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {
        "train_loss",
        "train_top1_err",
        "val_top5_err",
        "lr",
        "images_per_s",
        "epoch_time_s",
    } <= set(header)
    cfg = json.loads((out / "config.json").read_text())
    assert (
        cfg["model"] == "cifar_resnet20" and cfg["effective_lr"] == 0.05 and cfg["world_size"] == 1
    )
    from senet.interop.weights_file import read_weights

    _, meta = read_weights(out / "model.safetensors")
    assert (
        meta["classes"] == ["bars", "blob", "stripes"]
        and len(meta["mean"]) == 3
        and meta["input_size"] == 16
    )
    state = load_checkpoint(out / "checkpoint.pt")  # weights_only=True
    assert (
        state["epoch"] == 4
        and state["step"] == 0
        and isinstance(state["rng"]["torch"], torch.Tensor)
    )


def test_finished_run_is_not_rerun(tiny_imagefolder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = train(tiny_config(tiny_imagefolder, out, epochs=1))
    again = train(tiny_config(tiny_imagefolder, out, epochs=1))
    assert again["status"] == "already_finished" and again["val_top1_err"] == first["val_top1_err"]
    forced = train(tiny_config(tiny_imagefolder, out, epochs=1, force=True))
    assert forced["status"] == "finished"


@pytest.mark.parametrize("keep", [True, False])
def test_keep_freed_memory_is_applied_only_when_asked(
    tiny_imagefolder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: bool
) -> None:
    import senet.train.loop as loop

    calls: list[int] = []
    monkeypatch.setattr(loop, "keep_freed_memory", lambda: calls.append(1) or True)
    train(tiny_config(tiny_imagefolder, tmp_path / "run", epochs=1, keep_freed_memory=keep))
    assert calls == ([1] if keep else [])


@pytest.mark.slow
def test_stop_and_resume_is_bitwise_identical(tiny_imagefolder: Path, tmp_path: Path) -> None:
    straight = train(tiny_config(tiny_imagefolder, tmp_path / "a"))
    part = train(tiny_config(tiny_imagefolder, tmp_path / "b", stop_after_epochs=1))
    assert part["status"] == "stopped" and not (tmp_path / "b" / "summary.json").exists()
    with pytest.raises(ValueError, match="pass --resume"):
        train(tiny_config(tiny_imagefolder, tmp_path / "b"))
    resumed = train(tiny_config(tiny_imagefolder, tmp_path / "b", resume=True))
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    for key in ("train_loss", "val_top1_err", "val_loss"):
        assert straight[key] == resumed[key]


def test_resume_with_different_options_says_what_differs(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train(tiny_config(tiny_imagefolder, out, stop_after_epochs=1))
    with pytest.raises(
        ValueError, match=r"different options \(lr: checkpoint 0\.05 vs now 0\.2.*model: checkpoint"
    ):
        train(tiny_config(tiny_imagefolder, out, resume=True, lr=0.2, model="cifar_se_resnet20"))
    torch.save({"not": "a checkpoint"}, out / "checkpoint.pt")
    with pytest.raises(ValueError, match="not a senet training checkpoint"):
        train(tiny_config(tiny_imagefolder, out, resume=True))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    # epoch 1 at a sane warm-up lr (9 steps of batch 8), then an absurd one
    cfg = tiny_config(
        tiny_imagefolder, out, lr=1e12, constant_warmup_iters=9, constant_warmup_lr=0.01
    )
    with pytest.raises(
        NonFiniteLossError, match=r"training loss became (nan|inf).*epoch 2.*last good checkpoint"
    ):
        train(cfg)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 1 and all(
        torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point()
    )


def test_num_classes_and_channels_must_fit_the_data(tiny_imagefolder: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="--num-classes 10 disagrees with the data, which has 3 classes"
    ):
        train(tiny_config(tiny_imagefolder, tmp_path / "a", num_classes=10))
    with pytest.raises(ValueError, match="in_chans=3"):
        train(tiny_config(tiny_imagefolder, tmp_path / "b", model_options={"in_chans": 1}))


def test_class_folders_differ_in_a_run(tmp_path: Path, imagefolder_factory) -> None:
    root = imagefolder_factory(tmp_path / "d", n_train=8, n_val=2)
    (root / "val" / "blob").rename(root / "val" / "blobs")
    with pytest.raises(ValueError, match="class folders of the train and validation splits differ"):
        train(tiny_config(root, tmp_path / "run"))


def test_skip_corrupt_counts_in_summary(tmp_path: Path, imagefolder_factory) -> None:
    root = imagefolder_factory(tmp_path / "d", n_train=8, n_val=2)
    (root / "train" / "bars" / "0001.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match=r"0001\.png"):
        train(tiny_config(root, tmp_path / "a", epochs=1))
    summary = train(tiny_config(root, tmp_path / "b", epochs=1, skip_corrupt=True))
    assert summary["skipped_corrupt"] == {"train": 1, "val": 0} and summary["train_images"] == 23


# --------------------------------------------------------------------------------------------
# real data and the CLI
# --------------------------------------------------------------------------------------------
def _independent_errors(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    order = np.argsort(-logits, axis=1, kind="stable")
    top1 = np.mean(order[:, 0] != labels) * 100
    top5 = np.mean([label not in row[:5] for row, label in zip(order, labels)]) * 100
    return float(top1), float(top5)


def _run_and_eval(data: Path, out: Path, tmp_path: Path, extra: list[str]) -> dict:
    args = [
        "train",
        *train_args(
            data,
            out,
            *extra,
            model="cifar_se_resnet20",
            threads=1,
            tensorboard=False,
            amp="none",
            channels_last=False,
        ),
    ]
    # fp32 on both sides: `senet eval` and the run's own evaluation must agree to the last image
    assert cli_main(args) == 0
    logits_file = tmp_path / "logits.pt"
    assert cli_main(["eval", str(out), "--save-logits", str(logits_file), "--json"]) == 0
    blob = torch.load(logits_file, weights_only=True)
    summary = json.loads((out / "summary.json").read_text())
    return {
        "blob": blob,
        "summary": summary,
        "history": [json.loads(x) for x in (out / "metrics.jsonl").open()],
    }


@pytest.mark.slow
def test_cli_run_and_eval_agree_with_independent_computation(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    r = _run_and_eval(
        tiny_imagefolder,
        tmp_path / "run",
        tmp_path,
        ["--epochs", "3", "--batch-size", "8", "--lr", "0.05"],
    )
    logits, labels = r["blob"]["logits"].numpy(), r["blob"]["labels"].numpy()
    top1, top5 = _independent_errors(logits, labels)
    assert logits.shape == (24, 3)
    assert r["summary"]["val_top1_err"] == pytest.approx(top1, abs=1e-9)
    assert r["summary"]["val_top5_err"] == pytest.approx(top5, abs=1e-9)
    assert r["history"][-1]["train_loss"] < r["history"][0]["train_loss"]


@pytest.mark.data
@pytest.mark.slow
def test_real_cifar_jpegs_lower_the_loss_and_eval_matches(
    cifar_jpeg_dir: Path, tmp_path: Path
) -> None:
    r = _run_and_eval(
        cifar_jpeg_dir,
        tmp_path / "run",
        tmp_path,
        ["--epochs", "4", "--batch-size", "32", "--lr", "0.05"],
    )
    losses = [h["train_loss"] for h in r["history"]]
    assert losses[-1] < losses[0] - 0.1, losses
    logits, labels = r["blob"]["logits"].numpy(), r["blob"]["labels"].numpy()
    assert logits.shape == (200, 10) and np.bincount(labels).tolist() == [20] * 10
    top1, top5 = _independent_errors(logits, labels)
    assert r["summary"]["val_top1_err"] == pytest.approx(top1, abs=1e-9)
    assert r["summary"]["val_top5_err"] == pytest.approx(top5, abs=1e-9)


def test_eval_refuses_data_with_other_classes(
    tiny_imagefolder: Path, tmp_path: Path, imagefolder_factory
) -> None:
    out = tmp_path / "run"
    train(tiny_config(tiny_imagefolder, out, epochs=1))
    other = imagefolder_factory(tmp_path / "o", classes=("a", "b", "c", "d"), n_train=2, n_val=2)
    with pytest.raises(ValueError, match="trained on classes"):
        _eval(
            argparse.Namespace(
                weights=str(out),
                dataset="imagefolder",
                data_dir=str(other),
                split="val",
                subset=None,
                batch_size=8,
                device="cpu",
                workers=0,
                skip_corrupt=False,
                save_logits=None,
                json=True,
            )
        )


def test_cli_help_covers_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "-o KEY=VALUE, --model-option KEY=VALUE" in text
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("cli", True) is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, f"{flag} missing from senet train --help"
        if f.type in ("bool", "bool | None"):
            assert f"{flag}, --no-{flag[2:]}" in text, f"{flag} is not a --flag/--no-flag pair"
    assert (
        "{step,multistep,cosine,linear,plateau,constant}" in text
    )  # choices from the Literal type
    assert cli_main(["recipes"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in RECIPES) and "lr 0.6" in listing


def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["train", *train_args(tmp_path / "x", tmp_path / "o", model=None)])
    assert code == 2 and "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_is_bitwise(tmp_path: Path, imagefolder_factory) -> None:
    data = imagefolder_factory(tmp_path / "d", n_train=64, n_val=4)
    common = [
        "train",
        *train_args(data, None, epochs=2, batch_size=4, lr=0.02, threads=1, tensorboard=False),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(
        [*SENET, *common, "--out", str(tmp_path / "a")], check=True, env=env, capture_output=True
    )
    proc = subprocess.Popen(
        [*SENET, *common, "--out", str(tmp_path / "b")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (tmp_path / "b" / "config.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # somewhere inside the run
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "continue with --resume" in err, err
    state = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert (state["epoch"], state["step"]) != (2, 0)
    subprocess.run(
        [*SENET, *common, "--out", str(tmp_path / "b"), "--resume"],
        check=True,
        env=env,
        capture_output=True,
    )
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_file_based_imagenet_style_run(tiny_imagefolder: Path, tmp_path: Path) -> None:
    """The ImageNet path: files through torchvision (random-size crop + flip; resize → centre crop)."""
    out = tmp_path / "run"
    cfg = get_recipe(
        "imagenet",
        model="cifar_resnet20",
        data_dir=str(tiny_imagefolder),
        epochs=1,
        batch_size=8,
        input_size=12,
        eval_resize=14,
        workers=0,
        out=str(out),
        tensorboard=False,
        threads=1,
    )
    assert cfg.effective_lr == pytest.approx(0.6 * 8 / 1024)
    summary = train(cfg)
    assert summary["status"] == "finished" and summary["val_images"] == 24
    from senet.interop.weights_file import read_weights

    _, meta = read_weights(out / "model.safetensors")
    assert (meta["input_size"], meta["resize"], meta["std"], meta["in_chans"]) == (
        12,
        14,
        [1.0] * 3,
        3,
    )


@pytest.mark.slow
def test_digits_main_job_trains_to_low_error(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    t0 = time.perf_counter()
    done = subprocess.run(
        [*SENET, "train", "--recipe", "digits", "--out", str(tmp_path / "digits")],
        capture_output=True,
        text=True,
        timeout=400,
    )
    wall = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "digits" / "summary.json").read_text())
    assert summary["val_top1_err"] < 10, summary  # chance is 90%
    print(f"digits main job: {wall:.0f}s wall, val top-1 err {summary['val_top1_err']:.2f}%")
    # Run time is reported (benchmarks/, README), never asserted: CI machines are shared and noisy.
