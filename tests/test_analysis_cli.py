"""`senet analyze excitations`, `senet prune` and `senet ablate` end to end on tiny generated data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import senet
from senet.cli import main
from senet.interop.weights_file import save_weights

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An ImageFolder tree: 3 classes × 6 images of 8×8 RGB in train/ and test/."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k, cls in enumerate(("ant", "bee", "cow")):
            d = tmp_path / "data" / split / cls
            d.mkdir(parents=True)
            for i in range(6):
                img = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8) + 60 * k
                Image.fromarray(img.astype(np.uint8)).save(d / f"{i}.png")
    return tmp_path / "data"


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = senet.create_model("cifar_se_resnet20", num_classes=3)
    meta = {"mean": [0.5] * 3, "std": [0.25] * 3, "input_size": 8, "classes": ["ant", "bee", "cow"]}
    return save_weights(model, tmp_path / "model.safetensors", meta)


@pytest.mark.slow
def test_analyze_and_prune_commands(folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "exc"
    rc = main(["analyze", "excitations", str(checkpoint), "--data-dir", str(folder), "--per-class", "4",
               "--classes", "ant", "cow", "--out", str(out)])  # fmt: skip
    assert rc == 0
    for name in ("excitations.npz", "fig6_class_means.png", "fig7_ant.png", "specificity.png"):
        assert (out / name).stat().st_size > 0
    spec = json.loads((out / "specificity.json").read_text())
    assert spec["images_per_class"] == [4, 4, 4] and spec["blocks"][0]["name"] == "SE_2_1"
    pout = tmp_path / "pruned"
    rc = main(["prune", str(checkpoint), "--data-dir", str(folder), "--stats", str(out / "excitations.npz"),
               "--amount", "0.5", "--rankings", "excitation,l1", "--finetune-epochs", "1", "--batch-size", "6", "--out", str(pout)])  # fmt: skip
    assert rc == 0
    report = json.loads((pout / "prune_report.json").read_text())
    ex, l1 = report["pruned"]["excitation"], report["pruned"]["l1"]
    assert ex["params"] == l1["params"] < report["unpruned"]["params"]
    assert ex["macs"] < report["unpruned"]["macs"] and "finetuned" in ex
    # the pruned checkpoint is accepted by the analysis command
    rc = main(["analyze", "excitations", str(pout / "pruned_l1.safetensors"), "--data-dir", str(folder),
               "--per-class", "2", "--out", str(tmp_path / "exc2")])  # fmt: skip
    assert rc == 0


def test_bad_input_is_reported_without_traceback(tmp_path: Path, capsys) -> None:
    assert (
        main(["analyze", "excitations", str(tmp_path / "none.safetensors"), "--out", str(tmp_path)])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["ablate", "--out", str(tmp_path), "--vary", "reduction"]) == 2
    assert "KEY=V1,V2" in capsys.readouterr().err


def test_ablate_dry_run_lists_the_grid(tmp_path: Path, capsys) -> None:
    rc = main(["ablate", "--recipe", "digits", "--vary", "reduction=4,16", "--baseline", "--seeds", "2",
               "-o", "in_chans=1", "--out", str(tmp_path / "g"), "--dry-run"])  # fmt: skip
    assert rc == 0
    lines = capsys.readouterr().out.split("\n")
    assert sum("todo" in x for x in lines) == 6 and any(x.startswith("baseline__s1") for x in lines)


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(
    not SHARED.is_file(), reason=f"{SHARED} is absent (the shared CIFAR-10 JPEG archive)"
)
def test_excitations_on_cifar10_jpeg(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = senet.create_model("cifar_se_resnet20", num_classes=10)
    classes = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    ckpt = save_weights(model, tmp_path / "m.safetensors", {"input_size": 32, "classes": classes,
                                                            "mean": [0.49, 0.48, 0.45], "std": [0.25] * 3})  # fmt: skip
    rc = main(["analyze", "excitations", str(ckpt), "--data-dir", str(SHARED), "--per-class", "3",
               "--out", str(tmp_path / "exc")])  # fmt: skip
    assert rc == 0
    spec = json.loads((tmp_path / "exc" / "specificity.json").read_text())
    assert spec["images_per_class"] == [3] * 10
