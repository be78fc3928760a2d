"""The paper's recipes as presets: conditional values, assumed fields, model sizes, the plateau
schedule that ends a run (Sec. 6), the CIFAR recipes of Tables 4–5, frozen BatchNorm (appendix)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from _helpers import tiny_train_config
from senet.analysis import ablation as ab
from senet.factory import create_model
from senet.train import get_recipe, train
from senet.train.engine import StepRunner, train_one_epoch
from senet.train.model_setup import frozen_bn_params
from senet.train.recipes import RECIPES, choose_recipe, recipe_assumed, recipe_conditions
from senet.train.schedule import LRSchedule


# --------------------------------------------------------------------------------------------
# recipe values
# --------------------------------------------------------------------------------------------
def test_every_recipe_builds_and_names_only_real_fields() -> None:
    for name in RECIPES:
        cfg = get_recipe(name)
        for key in recipe_assumed(name):
            assert hasattr(cfg, key), f"{name}: assumed field {key} is not a TrainConfig field"
        for condition, values in recipe_conditions(name):
            assert set(condition) <= {"model", "dataset", "se"}
            assert all(hasattr(cfg, k) for k in values)


def test_cifar_recipes_follow_their_papers() -> None:
    r110 = get_recipe("cifar_resnet", model="cifar_resnet110")
    r20 = get_recipe("cifar_resnet", model="cifar_se_resnet20")
    assert (r110.constant_warmup_iters, r110.constant_warmup_lr) == (400, 0.01)
    assert r20.constant_warmup_iters == 0  # the warm-up is ResNet-110's only
    assert r110.milestone_epochs == (82, 123) and r110.weight_decay == 1e-4
    pre = get_recipe("cifar_preact")
    assert (pre.model, pre.constant_warmup_iters, pre.epochs) == ("cifar_se_resnet164", 400, 164)
    wrn = get_recipe("cifar_wrn")
    assert (wrn.nesterov, wrn.weight_decay, wrn.gamma, wrn.epochs) == (True, 5e-4, 0.2, 200)
    assert wrn.milestone_epochs == (60, 120, 160)
    lrs = LRSchedule(wrn, 10)
    assert [lrs.lr(e, 0) for e in (59, 60, 120, 160)] == pytest.approx([0.1, 0.02, 0.004, 0.0008])
    ss = get_recipe("cifar_shakeshake")
    assert (ss.schedule, ss.effective_lr, ss.epochs, ss.cutout, ss.nesterov) == (
        "cosine",
        0.2,
        1800,
        16,
        True,
    )
    s = LRSchedule(ss, 391)
    assert s.lr(0, 1) < s.lr(0, 0)  # cosine updated every iteration
    assert s.lr(900, 0) == pytest.approx(0.1) and s.lr(1799, 390) < 1e-6
    assert get_recipe("cifar_shakeshake", dataset="cifar100").cutout == 8
    assert get_recipe("cifar_shakeshake", dataset="cifar100", cutout=12).cutout == 12  # flags win


def test_conditional_values_and_se_only_options() -> None:
    assert get_recipe("imagenet", model="se_bn_inception").weight_decay == 2e-4
    assert get_recipe("imagenet", model="bn_inception").weight_decay == 2e-4
    assert get_recipe("imagenet", model="se_resnet50").weight_decay == 1e-4
    abl = get_recipe("ablation")
    assert abl.model_options == {"se_bias": False} and abl.label_smoothing == 0.1
    assert (abl.schedule, abl.plateau_drops, abl.effective_lr) == ("plateau", 3, 0.1)
    # every SE network gets bias-free SE FC layers; a plain baseline has no such option
    assert get_recipe("ablation", model="se_resnext50_32x4d").model_options == {"se_bias": False}
    assert get_recipe("ablation", model="resnet50").model_options == {}
    assert get_recipe("ablation", model_options={"se_bias": True}).model_options == {
        "se_bias": True
    }
    se = create_model("se_resnet50", **abl.model_options).layer1[0].se
    assert se.fc1.bias is None and se.fc2.bias is None


def test_sizes_come_from_the_model_unless_given() -> None:
    irv2 = get_recipe("imagenet", model="se_inception_resnet_v2")
    assert (irv2.input_size, irv2.eval_resize) == (299, 352)
    r50 = get_recipe("imagenet")
    assert (r50.input_size, r50.eval_resize) == (224, 256)
    assert get_recipe("imagenet", input_size=320).eval_resize == 366  # the model's 224:256 ratio
    assert get_recipe("imagenet", input_size=320, eval_resize=320).eval_resize == 320
    assert get_recipe("cifar_resnet", model="cifar_resnet20").input_size == 32


def test_recipe_choice_of_ablate() -> None:
    assert ab.default_recipe("se_resnet50", "imagefolder")[0] == "ablation"
    assert ab.default_recipe("se_resnet50")[0] == "ablation"
    assert ab.default_recipe("cifar_se_resnet20", "imagefolder")[0] == "cifar_resnet"
    assert ab.default_recipe("cifar_se_resnet20")[0] == "cifar_resnet"
    assert ab.default_recipe("se_resnet50", "cifar10")[0] == "cifar"
    assert choose_recipe(None, "cifar_resnet20", "imagefolder")[1].endswith("on imagefolder")


def test_ablate_cli_chooses_the_ablation_recipe(tmp_path: Path, capsys) -> None:
    from senet.cli import main

    args = [
        "ablate",
        "--model",
        "se_resnet50",
        "--dataset",
        "imagefolder",
        "--out",
        str(tmp_path),
        "--dry-run",
    ]
    assert main(args) == 0
    assert "recipe: ablation (the paper's Sec. 6 protocol" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# the plateau schedule with a number of drops, then the end of the run
# --------------------------------------------------------------------------------------------
def test_plateau_drops_then_stops_at_the_next_plateau() -> None:
    cfg = get_recipe("ablation", plateau_patience=1, plateau_drops=2)
    s = LRSchedule(cfg, 10)
    losses = [1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7]
    lrs, ended = [], None
    for epoch, loss in enumerate(losses):
        lrs.append(s.lr(epoch, 0))
        s.epoch_end(loss, epoch)
        if s.finished:
            ended = epoch + 1
            break
    # two flat epochs (> patience 1) per plateau: drops after epochs 4 and 7, the end after 10
    assert lrs == pytest.approx([0.1] * 4 + [0.01] * 3 + [0.001] * 3)
    assert (
        ended == 10
        and s.drops == 2
        and "after the last of 2 lr drops (epoch 10)" in s.stop_reason()
    )
    again = LRSchedule(cfg, 10)
    again.load_state_dict(s.state_dict())
    assert again.finished and again.drops == 2 and again.plateau_factor == pytest.approx(0.01)
    old = {k: v for k, v in s.state_dict().items() if k in ("plateau_factor", "best", "bad_epochs")}
    again.load_state_dict(old)  # a checkpoint from before plateau_drops
    assert not again.finished and again.drops == 0


def test_plateau_without_drops_limit_never_ends() -> None:
    s = LRSchedule(get_recipe("mobile", plateau_patience=0), 10)
    for epoch in range(20):
        s.epoch_end(1.0, epoch)
    assert not s.finished and s.stop_reason() is None and s.drops == 19


@pytest.mark.slow
def test_run_ended_by_its_plateau_records_why_and_is_not_extended(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    # a frozen backbone and a negligible lr: the validation loss cannot improve, so the first
    # flat epoch (patience 0) is the plateau that ends the run (no drops allowed)
    cfg = tiny_train_config(
        tiny_imagefolder,
        out,
        epochs=5,
        lr=1e-12,
        schedule="plateau",
        plateau_patience=0,
        plateau_drops=0,
        freeze_backbone=True,
        progress=None,
    )
    summary = train(cfg)
    assert (summary["status"], summary["epochs"], summary["max_epochs"]) == ("finished", 2, 5)
    assert summary["stop"] == "plateau" and "plateaued" in summary["stop_reason"]
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2 and json.loads(rows[-1])["val_loss"] is not None
    again = train(dataclasses.replace(cfg, resume=True, epochs=9))
    assert (
        again["status"] == "already_finished"
        and len((out / "metrics.jsonl").read_text().splitlines()) == 2
    )


# --------------------------------------------------------------------------------------------
# SENet-154: BatchNorm statistics and parameters frozen in the last epochs
# --------------------------------------------------------------------------------------------
def test_frozen_bn_parameters_do_not_move() -> None:
    torch.manual_seed(0)
    model = create_model("cifar_resnet20", num_classes=3)
    cfg = get_recipe("senet154", model="cifar_resnet20", epochs=3, freeze_bn_epochs=1)
    assert frozen_bn_params(model, cfg, 1) == ()
    frozen = frozen_bn_params(model, cfg, 2)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert len(frozen) == 2 * n_bn
    no_params = get_recipe(
        "senet154", model="cifar_resnet20", epochs=3, freeze_bn_epochs=1, freeze_bn_params=False
    )
    assert frozen_bn_params(model, no_params, 2) == ()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    runner = StepRunner(model, opt, lambda e, s: 0.1, seed=0, frozen=frozen)
    before = {id(p): p.detach().clone() for p in model.parameters()}
    batches = [(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])) for _ in range(2)]
    train_one_epoch(runner, batches, epoch=2)
    frozen_ids = {id(p) for p in frozen}
    moved = [id(p) for p in model.parameters() if not torch.equal(p, before[id(p)])]
    assert moved and not frozen_ids & set(moved)  # everything else trained


# --------------------------------------------------------------------------------------------
# preprocessing: the model's sizes on file data, Caffe's 0–255 mean subtraction
# --------------------------------------------------------------------------------------------
def test_file_data_takes_the_models_sizes_and_mean255_is_caffes_scale() -> None:
    from senet.data.preprocessing import normalize_uint8
    from senet.train import TrainConfig
    from senet.train.inputs import preprocessing_for

    files = object()  # anything but an in-memory set: file data
    irv2 = TrainConfig(model="se_inception_resnet_v2", dataset="imagefolder", augment="rrc_flip")
    prep = preprocessing_for(irv2, files)
    assert (prep.input_size, prep.resize_size) == (299, 352)
    small = TrainConfig(model="cifar_resnet20", dataset="imagefolder", augment="rrc_flip")
    assert preprocessing_for(small, files).input_size == 32
    caffe = get_recipe("imagenet", normalize="mean255", mean=(0.5, 0.25, 0.75))
    prep = preprocessing_for(caffe, files)
    assert prep.std == pytest.approx((1 / 255,) * 3)
    pixels = torch.tensor([200, 100, 255], dtype=torch.uint8).view(1, 3, 1, 1)
    x = normalize_uint8(pixels, prep.mean, prep.std).flatten()
    assert x.tolist() == pytest.approx([200 - 127.5, 100 - 63.75, 255 - 191.25], abs=1e-3)
    meta = prep.to_metadata()  # what the weights record, so eval/predict subtract the same
    assert meta["std"] == pytest.approx([1 / 255] * 3)


def test_cifar_fast_warms_up_then_decays_linearly_to_zero() -> None:
    cfg = get_recipe("cifar_fast")
    assert (cfg.model, cfg.batch_size, cfg.effective_lr, cfg.epochs) == (
        "cifar_se_resnet20",
        128,
        0.4,
        20,
    )
    s = LRSchedule(cfg, 100)
    assert s.lr(0, 0) == pytest.approx(0.4 / 200) and s.lr(1, 99) == pytest.approx(0.4)
    assert s.lr(2, 0) == pytest.approx(0.4)
    assert s.lr(11, 0) == pytest.approx(0.2)  # halfway through the 18 decay epochs
    assert 0 < s.lr(19, 99) < 0.4 / 1000 and s.lr(20, 0) == 0.0


@pytest.mark.slow
def test_cutout_and_balanced_batches_resume_bitwise(tiny_imagefolder: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    def cfg(out: Path, **kw: object):
        return tiny_train_config(
            tiny_imagefolder,
            out,
            epochs=2,
            train_subset=30,
            val_subset=6,
            cutout=6,
            balanced_sampler=True,
            progress=None,
            **kw,
        )

    train(cfg(tmp_path / "a"))
    assert train(cfg(tmp_path / "b", stop_after_epochs=1))["status"] == "stopped"
    train(cfg(tmp_path / "b", resume=True))
    wa = load_file(str(tmp_path / "a" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
