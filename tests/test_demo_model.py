"""The demo's own model (1-channel digits, 8×8) through eval, predict and export (issue 11, item 4)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import senet
from conftest import TINY_CLASSES
from senet.cli import main
from senet.data.preprocessing import Preprocessing
from senet.interop.weights_file import save_weights
from senet.train import train
from senet.train.recipes import get_recipe


@pytest.fixture(scope="module", params=[pytest.param("run", marks=pytest.mark.slow), "file"])
def digits_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's run (`senet train --recipe digits`, one short epoch; slow), or a weights file
    of the same network with the metadata such a run writes (quick)."""
    out = tmp_path_factory.mktemp("digits") / "run"
    if request.param == "run":
        train(get_recipe("digits", epochs=1, train_subset=256, out=str(out), tensorboard=False))
        return out
    torch.manual_seed(0)
    model = senet.create_model("cifar_se_resnet20", in_chans=1, num_classes=3)
    prep = Preprocessing(8, resize=8, mean=(0.3,), std=(0.4,), in_chans=1)
    out.mkdir()
    meta = {**prep.to_metadata(), "classes": list(TINY_CLASSES)}
    save_weights(model, out / "model.safetensors", meta)
    return out


def cli_json(*args: str) -> object:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(list(args)) == 0
    return json.loads(buf.getvalue())


def test_eval_of_the_demo_run_reproduces_its_validation(
    digits_run: Path, tiny_imagefolder: Path
) -> None:
    if not (digits_run / "summary.json").is_file():  # the quick variant: colour files read as grey
        res = cli_json(
            "eval",
            str(digits_run),
            "--json",
            "--workers",
            "0",
            "--dataset",
            "imagefolder",
            "--data-dir",
            str(tiny_imagefolder),
        )
        assert res["n"] == 24 and res["preprocessing"]["in_chans"] == 1
        return
    summary = json.loads((digits_run / "summary.json").read_text())
    res = cli_json("eval", str(digits_run), "--json", "--workers", "0", "--threads", "1")
    assert res["n"] == summary["val_images"]
    assert res["top1_err"] == summary["val_top1_err"]
    assert res["preprocessing"]["in_chans"] == 1 and res["preprocessing"]["input_size"] == 8


def test_predict_grey_and_colour_images_with_the_demo_model(
    digits_run: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "grey.png")
    Image.fromarray(rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(tmp_path / "colour.jpg")
    rows = cli_json(
        "predict", str(digits_run), str(tmp_path), "--json", "--topk", "3", "--threads", "1"
    )
    assert [Path(r["path"]).name for r in rows] == ["colour.jpg", "grey.png"]
    for r in rows:
        assert r["top1"] in [*map(str, range(10)), *TINY_CLASSES] and len(r["topk"]) == 3


def test_export_takes_the_channel_count_from_the_weights(digits_run: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "digits.onnx"
    assert main(["export", str(digits_run), "--out", str(out)]) == 0
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [1, 8, 8]
    meta = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["senet"])
    assert meta["in_chans"] == 1 and meta["input_size"] == 8 and len(meta["mean"]) == 1
