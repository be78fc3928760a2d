"""Fine-tuning: --init WEIGHTS / --pretrained [TAG], --freeze-backbone, --backbone-lr-mult.

The starting weights come from ``senet.factory.create_model(name, pretrained=...)``: every tensor
of the file is kept except a resized classifier, which keeps its fresh initialisation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import senet.train.model_setup as model_setup
from _helpers import tiny_train_config, train_args
from senet.cli import main as cli_main
from senet.factory import create_model as real_create_model
from senet.interop.weights_file import read_weights
from senet.train import TrainConfig, train
from senet.train.checkpoint import load_checkpoint


def tiny(data: Path, out: Path, **kw: object) -> TrainConfig:
    """The shared tiny run, one epoch on 24 training and 6 validation images."""
    return tiny_train_config(data, out, **{"epochs": 1, "train_subset": 24, "val_subset": 6, **kw})


@pytest.fixture(scope="module")
def source_run(tiny_imagefolder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished three-class run whose weights the fine-tuning tests start from."""
    out = tmp_path_factory.mktemp("source") / "run"
    train(tiny(tiny_imagefolder, out))
    return out


@pytest.fixture(scope="module")
def two_classes(tmp_path_factory: pytest.TempPathFactory, imagefolder_factory) -> Path:
    return imagefolder_factory(
        tmp_path_factory.mktemp("two") / "d", classes=("a", "b"), n_train=8, n_val=2
    )


def test_frozen_backbone_trains_only_a_new_classifier(
    source_run: Path, two_classes: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ft"
    summary = train(tiny(two_classes, out, init=str(source_run), freeze_backbone=True))
    assert summary["started_from"] == f"weights file {source_run}"
    src, new = (
        load_file(str(source_run / "model.safetensors")),
        load_file(str(out / "model.safetensors")),
    )
    head = {"fc.weight", "fc.bias"}
    assert new["fc.weight"].shape == (2, 64) and src["fc.weight"].shape == (3, 64)
    frozen = [k for k in new if k not in head]
    # everything else, BatchNorm running statistics included, is the source run's, bit for bit
    assert frozen and all(torch.equal(new[k], src[k]) for k in frozen)
    assert summary["trainable_params"] == 2 * 64 + 2 < summary["params"]
    meta = read_weights(out / "model.safetensors")[1]
    assert meta["classes"] == ["a", "b"] and "weights file" in meta["source"]


def test_backbone_lr_multiplier_makes_two_param_groups(
    source_run: Path, two_classes: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ft"
    train(tiny(two_classes, out, init=str(source_run / "model.safetensors"), backbone_lr_mult=0.0))
    groups = load_checkpoint(out / "checkpoint.pt")["optimizer"]["param_groups"]
    assert [g["lr_mult"] for g in groups] == [1.0, 0.0]
    assert groups[0]["lr"] > 0 and groups[1]["lr"] == 0.0
    src, new = (
        load_file(str(source_run / "model.safetensors")),
        load_file(str(out / "model.safetensors")),
    )
    assert torch.equal(new["conv1.weight"], src["conv1.weight"])  # lr 0: weights stay
    assert not torch.equal(new["bn1.running_mean"], src["bn1.running_mean"])  # BN still learns


def test_start_weights_reach_the_factory_and_not_on_resume(
    tiny_imagefolder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict] = []

    def recording(name: str, num_classes: int | None = None, **kw: object) -> torch.nn.Module:
        calls.append(dict(kw))
        kw.pop("pretrained", None)
        return real_create_model(name, num_classes=num_classes, **kw)

    monkeypatch.setattr(model_setup, "create_model", recording)
    out = tmp_path / "run"
    train(tiny(tiny_imagefolder, out, pretrained="imagenet_tag", epochs=2, stop_after_epochs=1))
    summary = train(tiny(tiny_imagefolder, out, pretrained="imagenet_tag", epochs=2, resume=True))
    assert calls == [{"pretrained": "imagenet_tag"}, {}]  # the checkpoint holds the weights
    assert summary["started_from"] == "pretrained weights 'imagenet_tag'"


def test_fine_tuning_flags_on_the_command_line(
    tiny_imagefolder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["train", "--recipe", "cifar", "--print-config"]
    for extra, want in (([], False), (["--pretrained"], True), (["--pretrained", "v2"], "v2")):
        assert cli_main([*base, *extra]) == 0
        assert json.loads(capsys.readouterr().out)["pretrained"] == want
    assert cli_main([*base, "--init", "w.safetensors", "--pretrained"]) == 2
    assert "pass one of them" in capsys.readouterr().err
    code = cli_main(
        ["train", *train_args(tiny_imagefolder, tmp_path / "o", init=str(tmp_path / "missing"))]
    )
    assert code == 2 and "--init" in (err := capsys.readouterr().err) and "does not exist" in err
