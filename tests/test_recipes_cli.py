"""``senet recipes``, ``senet train --recipe NAME`` for every new recipe and ``senet ablate``'s
recipe choice, through the real entry point (``python -m senet``) on tiny generated data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _helpers import cli_options, run_senet
from senet.cli import main as cli_main
from senet.train.recipes import RECIPES, recipe_assumed

NEW_RECIPES = (
    "ablation",
    "cifar_resnet",
    "cifar_preact",
    "cifar_wrn",
    "cifar_shakeshake",
    "cifar_fast",
    "places365",
)


def _config_json(stdout: str) -> dict:
    """The JSON object ``senet recipes NAME`` prints after its description line."""
    start = stdout.index("{")
    return json.JSONDecoder().raw_decode(stdout[start:])[0]


@pytest.mark.slow
def test_recipes_command_lists_every_recipe_with_its_assumptions() -> None:
    listing = run_senet("recipes")
    assert listing.returncode == 0, listing.stderr
    names = [line for line in listing.stdout.splitlines() if line and not line.startswith(" ")]
    assert names == list(RECIPES)
    assert "assumed: label_smoothing=0.1, freeze_bn_epochs=2" in listing.stdout  # senet154
    assert "for SE networks: model option se_bias=False" in listing.stdout  # ablation
    one = run_senet("recipes", "ablation")
    assert one.returncode == 0
    cfg = _config_json(one.stdout)
    assert (cfg["plateau_drops"], cfg["model_options"], cfg["label_smoothing"]) == (
        3,
        {"se_bias": False},
        0.1,
    )
    assumed = one.stdout.split("assumed (not stated in the paper):")[1]
    assert all(f"  {k}=" in assumed for k in recipe_assumed("ablation"))


def test_every_recipe_prints_its_config_and_assumed_fields(capsys) -> None:
    for name in RECIPES:
        assert cli_main(["recipes", name]) == 0
        out = capsys.readouterr().out
        cfg = _config_json(out)
        assert cfg["recipe"] == name and out.startswith(f"{name}: ")
        for key in recipe_assumed(name):
            assert f"  {key}=" in out.split("assumed (not stated in the paper):")[1]


def _one_epoch(data: Path, train_subset: int, val_subset: int) -> list[str]:
    """The image folders DATA, one epoch in batches of 6 on the subsets, one thread, no workers."""
    sizes = {"epochs": 1, "batch_size": 6, "train_subset": train_subset, "val_subset": val_subset}
    return cli_options(dataset="imagefolder", data_dir=data, **sizes, threads=1, workers=0)


def _tiny(
    data: Path, out: Path, *extra: str, recipe: str | None = None, model: str | None = None
) -> list[str]:
    """One epoch on 12 training images; the recipe's own network and input size unless named."""
    named = cli_options(recipe=recipe, model=model)
    return [*named, *_one_epoch(data, 12, 6), "--no-tensorboard", "--out", str(out), *extra]


#: each new recipe with its own network, at a small input size so one epoch takes seconds
CASES = {
    "cifar_resnet": ["--model", "cifar_se_resnet110", "--input-size", "16", "--crop-padding", "2"],
    "cifar_preact": ["--model", "cifar_resnet164", "--input-size", "16", "--crop-padding", "2"],
    "cifar_wrn": ["--model", "cifar_se_wrn16_8", "--input-size", "16", "--crop-padding", "2"],
    "cifar_shakeshake": ["--model", "cifar_se_shakeshake26_2x96d", "--input-size", "16"],
    "cifar_fast": ["--input-size", "16", "--crop-padding", "2"],
    "ablation": ["--input-size", "32", "--eval-resize", "36"],
    "places365": ["--input-size", "32", "--eval-resize", "36"],
}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", NEW_RECIPES)
def test_train_with_each_new_recipe(recipe: str, tiny_imagefolder: Path, tmp_path: Path) -> None:
    out = tmp_path / recipe
    done = run_senet("train", *_tiny(tiny_imagefolder, out, *CASES[recipe], recipe=recipe))
    assert done.returncode == 0, done.stderr
    cfg = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert cfg["recipe"] == recipe and summary["status"] == "finished"
    assert (summary["epochs"], summary["val_images"]) == (1, 6)
    assert cfg["model"] == RECIPES[recipe]["model"] or "--model" in CASES[recipe]
    if recipe == "ablation":
        assert cfg["model_options"] == {"se_bias": False} and summary["stop"] == "epochs"
    if recipe == "cifar_resnet":
        assert cfg["constant_warmup_iters"] == 400  # ResNet-110's warm-up
    if recipe == "cifar_shakeshake":
        assert (cfg["cutout"], cfg["schedule"], cfg["nesterov"]) == (16, "cosine", True)
    if recipe == "places365":
        assert cfg["balanced_sampler"] and cfg["model"] == "se_resnet152"


@pytest.mark.slow
def test_cifar_network_on_image_folders_gets_its_cifar_recipe(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = _tiny(
        tiny_imagefolder, out, "--input-size", "16", "--crop-padding", "2", model="cifar_resnet20"
    )
    done = run_senet("train", *args)
    assert done.returncode == 0, done.stderr
    assert (
        "recipe: cifar_resnet (the recipe registered for cifar_resnet20 on imagefolder"
        in done.stderr
    )
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["dataset"], cfg["augment"], cfg["in_memory"]) == ("imagefolder", "crop_flip", None)


@pytest.mark.slow
def test_ablate_trains_imagenet_style_grids_with_the_ablation_recipe(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grid"
    done = run_senet(
        "ablate",
        "--model",
        "se_resnet50",
        "--vary",
        "reduction=8",
        "--baseline",
        *_one_epoch(tiny_imagefolder, 6, 3),
        "--set",
        "input_size=32",
        "--set",
        "eval_resize=36",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "recipe: ablation (the paper's Sec. 6 protocol" in done.stderr
    se = json.loads((out / "reduction-8__s0" / "config.json").read_text())
    plain = json.loads((out / "baseline__s0" / "config.json").read_text())
    assert se["recipe"] == "ablation" and se["model_options"] == {"reduction": 8, "se_bias": False}
    assert plain["model"] == "resnet50" and plain["model_options"] == {}
    assert json.loads((out / "reduction-8__s0" / "summary.json").read_text())["stop"] == "epochs"
    assert "ablation recipe" in (out / "table.md").read_text()
