"""One preprocessing description for train, eval and predict (senet.data.preprocessing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from senet.data.preprocessing import Preprocessing, normalize_uint8


def test_resize_follows_crop_pct_unless_given() -> None:
    assert Preprocessing().resize_size == 256  # the paper: 256 → 224
    assert Preprocessing(299, 352).resize_size == 352  # Inception-ResNet-v2 (Sec. 5.1)
    assert Preprocessing(224, crop_pct=0.95).resize_size == 235  # floor(224 / 0.95), timm's rule
    assert Preprocessing(32, 32).resize_size == 32


def test_overrides_keep_the_crop_fraction() -> None:
    p = Preprocessing()  # 256 → 224
    assert p.with_overrides(input_size=320).resize_size == 365  # floor(320 / 0.875)
    assert p.with_overrides(input_size=320, resize=320).resize_size == 320
    assert p.with_overrides(crop_pct=1.0).resize_size == 224
    assert p.with_overrides() is p


def test_metadata_round_trip_and_older_files() -> None:
    p = Preprocessing(48, 56, interpolation="bicubic", mean=(0.5,), std=(0.25,), in_chans=1)
    assert Preprocessing.from_metadata(p.to_metadata()) == p
    old = {"input_size": 12, "eval_resize": 14, "mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]}
    q = Preprocessing.from_metadata(old)
    assert (q.input_size, q.resize_size, q.in_chans, q.std) == (12, 14, 3, (1.0, 1.0, 1.0))
    timm_style = {"input_size": [3, 288, 288], "crop_pct": 0.95, "interpolation": "bicubic"}
    r = Preprocessing.from_metadata(timm_style)
    assert (r.input_size, r.resize_size, r.interpolation) == (288, 303, "bicubic")
    default = Preprocessing(32, 32)
    assert Preprocessing.from_metadata({}, default) == default


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_size": 0}, "input size"),
        ({"resize": 100}, "smaller than the 224 crop"),
        ({"crop_pct": 1.5}, "crop_pct"),
        ({"interpolation": "lanczos"}, "interpolation"),
        ({"mean": (0.5,)}, "one value per channel"),
    ],
)
def test_bad_values_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Preprocessing(**kwargs)


def test_in_memory_normalisation_is_bitwise_the_file_transform(tmp_path: Path) -> None:
    """Training's uint8 batches and the PIL transform feed the model exactly the same numbers."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(pixels).save(path)
    p = Preprocessing(16, 16, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    from_file = p.transform()(p.open_image(path))
    in_memory = normalize_uint8(torch.from_numpy(pixels).permute(2, 0, 1)[None], p.mean, p.std)[0]
    assert torch.equal(from_file, in_memory)


def test_grey_models_read_grey_images(tmp_path: Path) -> None:
    path = tmp_path / "g.png"
    Image.fromarray(np.full((8, 8, 3), 128, dtype=np.uint8)).save(path)
    p = Preprocessing(8, 8, mean=(0.5,), std=(0.5,), in_chans=1)
    x = p.transform()(p.open_image(path))
    assert x.shape == (1, 8, 8)
    assert torch.allclose(x, torch.full_like(x, (128 / 255 - 0.5) / 0.5), atol=1e-6)
    with pytest.raises(ValueError, match="not a readable image"):
        (tmp_path / "bad.png").write_bytes(b"not an image")
        p.open_image(tmp_path / "bad.png")


def test_predict_reproduces_evaluation_of_a_trained_run(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    """A run trained in memory: `predict` on the files sees what the evaluation loader saw."""
    from _helpers import tiny_train_config
    from senet.interop.inference import load_classifier, predict
    from senet.train import TrainConfig, build_eval_loader, evaluate, train

    out = tmp_path / "run"
    # the recipe's own lr, input size, padding and precision
    cfg = tiny_train_config(
        tiny_imagefolder,
        out,
        epochs=1,
        batch_size=16,
        workers=0,
        lr=None,
        input_size=None,
        crop_padding=None,
        amp=None,
    )
    train(cfg)
    model, meta = load_classifier(out / "model.safetensors")
    # in memory, the 16-px images were resized to the recipe's 32 once; predict resizes the files alike
    assert (meta["input_size"], meta["resize"]) == (32, 32)
    eval_cfg = TrainConfig(dataset="imagefolder", data_dir=str(tiny_imagefolder), workers=0)
    loader = build_eval_loader(eval_cfg, "val", preprocessing=meta)
    ev = evaluate(model, loader, return_logits=True)
    files = sorted((tiny_imagefolder / "val").glob("*/*.png"))
    preds = predict(model, files, meta, topk=1)
    assert [p.top[0][0] for p in preds] == ev["logits"].argmax(1).tolist()
