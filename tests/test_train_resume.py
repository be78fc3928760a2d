"""Resume and re-run semantics, the recipe a run gets without --recipe, and the precision policy."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _helpers import tiny_train_args, tiny_train_config, train_args
from senet.cli import main as cli_main
from senet.train import TrainConfig, TrainLog, choose_recipe, get_recipe, train
from senet.train.checkpoint import load_checkpoint
from senet.utils.cpu import PrecisionChoice


def tiny(data: Path, out: Path, **kw: object) -> TrainConfig:
    """The shared tiny run, two epochs on 24 training and 6 validation images."""
    return tiny_train_config(data, out, **{"epochs": 2, "train_subset": 24, "val_subset": 6, **kw})


class Notes(TrainLog):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def _same(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _lrs(out: Path) -> list[float]:
    return [json.loads(line)["lr"] for line in (out / "metrics.jsonl").open()]


# --------------------------------------------------------------------------------------------
# extending a finished run
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "schedule, lrs",
    [
        ("multistep", [0.1, 0.1, 0.01, 0.001, 0.001, 0.001]),  # milestones stay at 2 and 3
        ("step", [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]),  # step=2: still ÷10 every 2 epochs
        ("constant", [0.1] * 6),
    ],
)
def test_extended_schedule_keeps_the_original_span(schedule: str, lrs: list[float]) -> None:
    from senet.train.loop import resumed_config
    from senet.train.schedule import LRSchedule

    old = get_recipe("cifar", epochs=4, schedule=schedule, step=2)
    state = {"config": old.to_dict(), "epoch": 4, "step": 0}
    notes = Notes()
    new = resumed_config(dataclasses.replace(old, epochs=6, resume=True), state, notes)
    assert new.schedule_epochs == 4 and new.milestone_epochs == old.milestone_epochs
    assert [LRSchedule(new, 10).lr(e, 0) for e in range(6)] == pytest.approx(lrs)
    assert [LRSchedule(old, 10).lr(e, 0) for e in range(4)] == pytest.approx(lrs[:4])
    assert any("from 4 to 6 epochs" in n for n in notes.lines)
    with pytest.raises(ValueError, match="already trained 4 epochs"):
        resumed_config(dataclasses.replace(old, epochs=3), state, notes)


@pytest.mark.slow
def test_finished_run_says_how_to_extend_and_extends(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train(tiny(tiny_imagefolder, out))
    notes = Notes()
    again = train(tiny(tiny_imagefolder, out, resume=True), log=notes)
    assert again["status"] == "already_finished"
    assert any(f"--resume --out {out} --epochs M (M > 2) extends it" in n for n in notes.lines)
    notes = Notes()
    summary = train(tiny(tiny_imagefolder, out, resume=True, epochs=4), log=notes)
    assert summary["status"] == "finished" and summary["epochs"] == 4
    assert any("keeps its 2-epoch span" in n for n in notes.lines), notes.lines
    # multistep at 50%/75% of the original 2 epochs (1, 1.5): the added epochs stay at the last rate
    assert _lrs(out) == pytest.approx([0.05, 0.005, 0.0005, 0.0005])
    assert json.loads((out / "config.json").read_text())["schedule_epochs"] == 2
    # an extended run is the run that was asked for 4 epochs of a 2-epoch schedule from the start
    train(tiny(tiny_imagefolder, tmp_path / "fresh", epochs=4, schedule_epochs=2))
    assert _same(out, tmp_path / "fresh")


def test_resume_refusals_name_the_problem(tiny_imagefolder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(tiny(tiny_imagefolder, out, schedule="cosine", stop_after_epochs=1))
    with pytest.raises(ValueError, match="a cosine schedule ends at lr 0 after its 2 epochs"):
        train(tiny(tiny_imagefolder, out, schedule="cosine", resume=True, epochs=3))
    with pytest.raises(ValueError, match=r"different options \(lr: checkpoint 0\.05 vs now 0\.1"):
        train(tiny(tiny_imagefolder, out, schedule="cosine", resume=True, lr=0.1))
    with pytest.raises(ValueError, match="schedule_epochs: checkpoint 2 vs now 5"):
        train(tiny(tiny_imagefolder, out, schedule="cosine", resume=True, schedule_epochs=5))


@pytest.mark.slow
def test_cli_resume_reads_the_runs_config_and_config_reruns(
    tiny_imagefolder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = [
        "train",
        *tiny_train_args(
            tiny_imagefolder,
            None,
            "-o",
            "se_stages=1",
            model="cifar_se_resnet20",
            train_subset=None,
            val_subset=None,
            progress=False,
        ),
    ]
    assert cli_main([*args, "--out", str(out), "--stop-after-epochs", "1"]) == 0
    capsys.readouterr()
    assert cli_main(["train", "--resume", "--out", str(out)]) == 0  # nothing else repeated
    err = capsys.readouterr().err
    assert f"config: the run's own {out / 'config.json'}" in err and "resuming" in err
    assert cli_main([*args, "--out", str(tmp_path / "straight")]) == 0
    assert _same(out, tmp_path / "straight")
    again = tmp_path / "again"
    assert cli_main(["train", "--config", str(out / "config.json"), "--out", str(again)]) == 0
    assert _same(out, again)  # a saved config re-runs to the same bits
    saved = json.loads((again / "config.json").read_text())
    assert saved["model_options"] == {"se_stages": [1]} and saved["resume"] is False
    assert saved["recipe"] == "cifar"
    code = cli_main(["train", "--config", str(out / "config.json"), "--recipe", "imagenet"])
    assert (
        code == 2 and "disagrees with the saved config's recipe 'cifar'" in capsys.readouterr().err
    )


# --------------------------------------------------------------------------------------------
# the recipe a run gets without --recipe
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model, dataset, recipe",
    [
        (None, None, "digits"),
        ("resnet18", "imagefolder", "imagenet"),
        (None, "cifar10", "cifar"),
        (None, "cifar100", "cifar"),
        ("cifar_resnet56", None, "cifar_resnet"),
        ("se_resnet50", None, "imagenet"),
        ("senet154", None, "senet154"),
        ("se_mobilenet_v1", "imagefolder", "mobile"),
        ("se_mobilenet_v1", "cifar10", "cifar"),
        (None, "digits", "digits"),
        ("cifar_se_resnet20", "digits", "digits"),
        ("cifar_resnet110", "cifar100", "cifar_resnet"),
        ("cifar_se_resnet164", None, "cifar_preact"),
        ("cifar_wrn16_8", "cifar10", "cifar_wrn"),
        ("cifar_se_shakeshake26_2x96d", None, "cifar_shakeshake"),
        # a CIFAR network on image folders (CIFAR JPEGs) keeps its CIFAR recipe
        ("cifar_resnet20", "imagefolder", "cifar_resnet"),
        ("cifar_se_wrn16_8", "imagefolder", "cifar_wrn"),
        ("se_inception_resnet_v2", "imagefolder", "imagenet"),
        ("se_mobilenet_v1", "digits", "digits"),
    ],
)
def test_recipe_follows_model_and_data(model: str | None, dataset: str | None, recipe: str) -> None:
    assert choose_recipe(None, model, dataset)[0] == recipe
    assert choose_recipe("cifar", model, dataset)[0] == "cifar"


def test_cli_imagefolder_gets_imagenet_preprocessing(
    tiny_imagefolder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "train",
        *train_args(tiny_imagefolder, None, "--print-config", recipe=None, model="resnet18"),
    ]
    assert cli_main(args) == 0
    out, err = capsys.readouterr()
    cfg = json.loads(out)
    assert (
        cfg["recipe"] == "imagenet" and cfg["model_options"] == {} and cfg["augment"] == "rrc_flip"
    )
    assert "recipe: imagenet (the default for --dataset imagefolder" in err


# --------------------------------------------------------------------------------------------
# precision
# --------------------------------------------------------------------------------------------
def test_precision_is_resolved_saved_and_kept_on_resume(
    tiny_imagefolder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import senet.train.loop as loop

    asked = []

    def fake(device: object, amp: str = "auto", channels_last: bool | None = None):
        asked.append((amp, channels_last))
        if amp == "auto":  # as on a CPU with native bf16
            return PrecisionChoice("bf16", True, "native bf16", "test CPU", "AVX512-BF16")
        return PrecisionChoice(amp, bool(channels_last), "as asked", "test CPU", "AVX512-BF16")

    monkeypatch.setattr(loop, "choose_precision", fake)
    out = tmp_path / "run"
    notes = Notes()
    train(tiny(tiny_imagefolder, out, amp="auto", stop_after_epochs=1), log=notes)
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["amp"], cfg["channels_last"]) == ("bf16", True)
    assert "bf16 autocast, channels_last (test CPU: AVX512-BF16; native bf16)" in cfg["precision"]
    assert sum(n.startswith("precision: ") for n in notes.lines) == 1
    # a resume left on auto keeps the stored choice, whatever this machine would pick
    summary = train(tiny(tiny_imagefolder, out, amp="auto", resume=True))
    assert asked[-1] == ("bf16", True) and summary["amp"] == "bf16" and summary["channels_last"]
    assert "kept from the run's checkpoint" in summary["precision"]


def test_bf16_training_keeps_bn_statistics_and_optimizer_state_fp32(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train(tiny(tiny_imagefolder, out, amp="bf16", channels_last=True, epochs=1))
    state = load_checkpoint(out / "checkpoint.pt")
    assert all(v.dtype in (torch.float32, torch.int64) for v in state["model"].values())
    bufs = [s["momentum_buffer"] for s in state["optimizer"]["state"].values()]
    assert bufs and all(b.dtype == torch.float32 for b in bufs)
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["amp"], cfg["channels_last"]) == ("bf16", True)
