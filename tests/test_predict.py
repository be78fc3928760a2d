"""``senet predict``: top-5 with probabilities, the paper's eval transform, per-file errors (issue 5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import senet
from _helpers import run_senet
from senet.cli import main
from senet.data.preprocessing import Preprocessing
from senet.interop.inference import class_names, eval_transform
from senet.interop.weights_file import save_weights

#: the class names the CIFAR checkpoint below stores
CIFAR10_CLASSES = (
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
)


def make_images(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i, (size, fmt) in enumerate([((40, 50), "png"), ((64, 33), "jpeg"), ((32, 32), "bmp")]):
        p = folder / f"img{i}.{fmt}"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    gray = folder / "gray.png"
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(gray)  # converted to RGB
    return [*paths, gray]


def parse(out: str) -> dict[str, list[tuple[float, str]]]:
    """``path`` lines followed by ``  k. prob  name (index)`` lines."""
    result: dict[str, list[tuple[float, str]]] = {}
    current = None
    for line in out.splitlines():
        if not line.startswith("  "):
            current = line
            result[current] = []
        else:
            _, prob, rest = line.split(maxsplit=2)
            result[current].append((float(prob), rest))
    return result


@pytest.fixture(scope="module")
def cifar_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = senet.create_model("cifar_se_resnet20")
    path = tmp_path_factory.mktemp("ckpt") / "c20.safetensors"
    return save_weights(model, path, {"input_size": 32, "classes": list(CIFAR10_CLASSES)})


def test_top5_with_class_names_and_a_corrupt_file(
    cifar_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = make_images(tmp_path)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg" * 20)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(images[0].read_bytes()[:60])
    args = [
        str(images[0]),
        str(corrupt),
        str(images[1]),
        str(tmp_path / "missing.png"),
        str(truncated),
        *map(str, images[2:]),
    ]
    code = main(["predict", str(cifar_checkpoint), *args])
    out, err = capsys.readouterr()
    assert code == 1  # some files failed
    results = parse(out)
    assert list(results) == [
        str(p) for p in images
    ]  # every good image, in order, despite the bad ones
    for top in results.values():
        assert len(top) == 5
        probs = [p for p, _ in top]
        assert probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1 + 1e-6
        assert all(name.split(" (")[0] in CIFAR10_CLASSES for _, name in top)
    assert f"{corrupt}: not a readable image" in err
    assert f"{tmp_path / 'missing.png'}: no such file" in err
    assert f"{truncated}: not a readable image" in err
    assert "3 of 7 image(s) failed" in err


def test_json_output_and_success_exit(
    cifar_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = make_images(tmp_path)[:2]
    assert main(["predict", str(cifar_checkpoint), "--json", "--topk", "3", *map(str, images)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in rows] == [str(p) for p in images]
    for r in rows:
        assert len(r["topk"]) == 3 and sum(t["prob"] for t in r["topk"]) <= 1 + 1e-6
        assert r["top1"] == r["topk"][0]["class"] and r["top1_prob"] == r["topk"][0]["prob"]


def test_imagenet_names_for_1000_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 1000-class checkpoint without names uses ImageNet's (from torchvision's weight metadata)."""
    names = class_names({}, 1000)
    assert len(names) == 1000 and names[0] == "tench" and names[999] == "toilet tissue"
    torch.manual_seed(0)
    path = save_weights(senet.create_model("resnet18"), tmp_path / "r18.safetensors")
    image = make_images(tmp_path)[0]
    assert main(["predict", str(path), str(image)]) == 0
    top = parse(capsys.readouterr().out)[str(image)]
    assert len(top) == 5 and all(n.rsplit(" (", 1)[0] in names for _, n in top)


def test_eval_transform_follows_the_paper_and_the_checkpoint() -> None:
    image = Image.fromarray(np.zeros((300, 400, 3), dtype=np.uint8))
    t = eval_transform({})
    assert tuple(t(image).shape) == (3, 224, 224)
    assert t.transforms[0].size == 256  # shorter side 256, then the centre 224 crop
    small = eval_transform({"input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.25] * 3})
    x = small(image)
    assert tuple(x.shape) == (3, 32, 32) and small.transforms[0].size == 36  # floor(32 / 0.875)
    assert torch.allclose(x, torch.full_like(x, -2.0))  # (0 - 0.5) / 0.25


def test_bad_model_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = make_images(tmp_path)[0]
    assert main(["predict", "se_resnet05", str(image)]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nope.safetensors"), str(image)]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no such file"):
        Preprocessing().open_image(tmp_path / "nope.png")


def test_registered_input_size_is_the_default(tmp_path: Path) -> None:
    """A CIFAR checkpoint without input_size in its metadata is evaluated at 32×32, not 224×224."""
    from senet.interop.inference import load_classifier, predict

    path = save_weights(senet.create_model("cifar_resnet20"), tmp_path / "r20.safetensors")
    model, meta = load_classifier(path)
    assert meta["input_size"] == 32 and model.training is False
    seen = []
    model.register_forward_hook(lambda _m, inp, _o: seen.append(tuple(inp[0].shape)))
    (r,) = list(predict(model, [make_images(tmp_path)[0]], meta))
    assert r.error is None and len(r.top) == 5
    assert seen == [(1, 3, 32, 32)]


@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_optimize_gives_the_same_predictions(
    cifar_checkpoint: Path, tmp_path: Path, amp: str
) -> None:
    """``--optimize`` (BN folded, convolution weights packed; bf16 weights under bf16) through
    the real entry point: the same classes in the same order, probabilities within rounding."""
    images = make_images(tmp_path)
    runs = []
    for extra in ([], ["--optimize"]):
        proc = run_senet(
            "predict", cifar_checkpoint, *images, "--json", "--topk", "10", "--amp", amp, *extra
        )
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout))
    plain, fast = runs
    assert [r["path"] for r in fast] == [r["path"] for r in plain] == [str(p) for p in images]
    tol = 1e-4 if amp == "none" else 0.02  # bf16: autocast's casts vs weights stored in bf16
    for a, b in zip(plain, fast):
        pa = {t["class"]: t["prob"] for t in a["topk"]}
        pb = {t["class"]: t["prob"] for t in b["topk"]}
        assert pa.keys() == pb.keys()
        assert all(abs(pa[c] - pb[c]) <= tol for c in pa)
        if amp == "none":
            assert [t["class"] for t in a["topk"]] == [t["class"] for t in b["topk"]]
