"""``senet eval`` (issue 11, item 3): streamed, the weights' own transform, equal to the run's own
validation and to ``senet predict`` image by image; resolution overrides, TTA, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import senet
from _helpers import run_senet, tiny_train_config
from senet.cli import main
from senet.interop.weights_file import read_metadata, save_weights
from senet.train import train

REPO = Path(__file__).resolve().parents[1]
SHIPPED_RUN = REPO / "results" / "cifar10_resnet20_vs_se_8ep" / "cifar_se_resnet20"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_imagefolder: Path) -> Path:
    """A finished in-memory run on the generated tree (2 epochs; eval on its val split)."""
    out = tmp_path_factory.mktemp("run") / "run"
    config = tiny_train_config(tiny_imagefolder, out, epochs=2, channels_last=False, progress=None)
    train(config)
    return out


def eval_json(*args: str) -> dict:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["eval", *args, "--json", "--workers", "0"]) == 0
    return json.loads(buf.getvalue())


def test_eval_reproduces_the_runs_own_validation(tiny_run: Path) -> None:
    summary = json.loads((tiny_run / "summary.json").read_text())
    res = eval_json(str(tiny_run))
    assert res["n"] == summary["val_images"] == 24
    assert res["top1_err"] == summary["val_top1_err"]
    assert res["top5_err"] == summary["val_top5_err"]
    assert res["loss"] == pytest.approx(summary["val_loss"], rel=1e-5)
    assert res["preprocessing"]["resize"] == res["preprocessing"]["input_size"] == 16
    assert res["precision"].startswith("fp32")  # the run's own (amp none), not the CPU's bf16


def test_eval_top1_equals_predict_accuracy(
    tiny_run: Path, tiny_imagefolder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = eval_json(str(tiny_run), "--amp", "none", "--batch-size", "5")
    assert (
        main(["predict", str(tiny_run), str(tiny_imagefolder / "val"), "--json", "--amp", "none"])
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == res["n"]
    correct = [Path(r["path"]).parent.name == r["top1"] for r in rows]
    assert res["top1_err"] == pytest.approx(100.0 * (1 - sum(correct) / len(rows)), abs=1e-9)


def test_archive_streams_the_same_numbers(
    tiny_run: Path, tiny_imagefolder: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_imagefolder, arcname="tiny")
    from_dir = eval_json(str(tiny_run))
    from_tar = eval_json(str(tiny_run), "--data-dir", str(archive))
    for key in ("n", "top1_err", "top5_err"):
        assert from_tar[key] == from_dir[key]
    assert from_tar["loss"] == pytest.approx(from_dir["loss"], rel=1e-6)
    sub = eval_json(str(tiny_run), "--data-dir", str(archive), "--subset", "7")
    assert sub["n"] == 7


@pytest.mark.slow
def test_weights_without_statistics_and_a_subprocess_run(
    tiny_imagefolder: Path, tmp_path: Path
) -> None:
    """A file written by save_weights (no mean/std: the issue's KeyError) evaluates, with a note."""
    torch.manual_seed(0)
    path = save_weights(
        senet.create_model("cifar_resnet20", num_classes=3), tmp_path / "w.safetensors"
    )
    assert "mean" not in read_metadata(path)
    proc = run_senet(
        "eval",
        str(path),
        "--dataset",
        "imagefolder",
        "--data-dir",
        str(tiny_imagefolder),
        "--workers",
        "1",
        "--json",
        "--save-logits",
        str(tmp_path / "logits.pt"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "no mean/std; normalising with ImageNet's" in proc.stderr
    res = json.loads(proc.stdout)
    assert res["n"] == 24 and res["preprocessing"]["input_size"] == 32  # the registry's CIFAR size
    blob = torch.load(tmp_path / "logits.pt", weights_only=True)
    assert blob["logits"].shape == (24, 3) and blob["classes"] == ["bars", "blob", "stripes"]


def test_resolution_overrides_and_tta(tiny_run: Path) -> None:
    at32 = eval_json(str(tiny_run), "--input-size", "32")
    assert (at32["preprocessing"]["input_size"], at32["preprocessing"]["resize"]) == (32, 32)
    pct = eval_json(str(tiny_run), "--input-size", "14", "--crop-pct", "0.875")
    assert pct["preprocessing"]["resize"] == 16
    resized = eval_json(str(tiny_run), "--eval-resize", "20")
    assert (resized["preprocessing"]["resize"], resized["preprocessing"]["input_size"]) == (20, 16)
    for tta in ("flip", "10crop"):
        res = eval_json(str(tiny_run), "--tta", tta, "--eval-resize", "20")
        assert res["n"] == 24 and res["tta"] == tta and 0 <= res["top1_err"] <= 100


def test_flip_tta_of_a_mirror_symmetric_model_changes_nothing(tiny_run: Path) -> None:
    """Averaging over a view and its mirror: identical to no TTA when the model cannot tell them apart."""
    from senet.data.preprocessing import Preprocessing
    from senet.interop.evaluation import tta_transform

    prep = Preprocessing(8, resize=10)
    from PIL import Image

    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 15, 3), dtype=np.uint8))
    views = tta_transform(prep, "flip")(img)
    assert views.shape == (2, 3, 8, 8) and torch.equal(views[1], views[0].flip(-1))
    crops = tta_transform(prep, "10crop")(img)
    assert crops.shape == (10, 3, 8, 8) and torch.equal(crops[4], prep.transform()(img))


def test_bad_arguments_are_one_line(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["--input-size", "0"], "input size 0 must be a positive integer"),
        (["--input-size", "-5"], "input size -5 must be a positive integer"),
        (["--crop-pct", "2"], "crop_pct 2.0 must be in (0, 1]"),
        (["--eval-resize", "8"], "eval resize 8 is smaller than the 16 crop"),
        (["--batch-size", "0"], "--batch-size 0 must be ≥ 1"),
        (["--device", "tpu9"], "--device 'tpu9' is not a device"),
        (["--threads", "0"], "--threads 0 must be ≥ 1"),
        (
            ["--dataset", "imagefolder", "--data-dir", "/nonexistent"],
            "data directory /nonexistent does not exist",
        ),
    ]
    for extra, message in cases:
        assert main(["eval", str(tiny_run), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["eval", "cifar_resnet20.nope", "--dataset", "digits"]) == 2
    assert "no pretrained weights are registered for cifar_resnet20" in capsys.readouterr().err


def test_corrupt_images_are_named_or_skipped(
    tiny_run: Path, tmp_path: Path, imagefolder_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    root = imagefolder_factory(tmp_path / "d", n_train=2, n_val=4)
    (root / "val" / "blob" / "0002.png").write_bytes(b"\x89PNG broken")
    args = ["eval", str(tiny_run), "--data-dir", str(root), "--workers", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "error:" in x]
    assert "0002.png: not a readable image" in line and "--skip-corrupt" in line
    assert "Traceback" not in err
    res = eval_json(str(tiny_run), "--data-dir", str(root), "--skip-corrupt")
    assert res["n"] == 11 and res["skipped_corrupt"] == 1


@pytest.mark.slow
def test_memory_is_flat_in_the_split_size(tmp_path: Path) -> None:
    """Peak RSS evaluating 640 images stays within 60 MB of 64 images (all 640 decoded at the
    evaluation size would take 640 × 3 × 192² bytes = 71 MB). Measured: 752 vs 751 MB."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:200, 0:200]
    for c in range(4):
        d = tmp_path / "data" / "val" / f"k{c}"
        d.mkdir(parents=True)
        for i in range(160):
            base = np.sin(xx / (5 + c + i % 7)) + np.cos(yy / (9 + c))
            img = (
                np.clip(base[..., None] * 60 + 128 + rng.normal(0, 8, (200, 200, 3)), 0, 255)
            ).astype(np.uint8)
            Image.fromarray(img).save(d / f"{i:03d}.jpg", quality=85)
    torch.manual_seed(0)
    path = save_weights(
        senet.create_model("shufflenet_v1_g3", num_classes=4),
        tmp_path / "s.safetensors",
        {"input_size": 192, "resize": 192, "classes": ["k0", "k1", "k2", "k3"]},
    )
    probe = (
        "import resource, sys; from senet.cli import main; code = main(sys.argv[1:]); "
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"
    )
    peaks = {}
    for n in (64, 640):
        env = {"PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"}
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                probe,
                "eval",
                str(path),
                "--dataset",
                "imagefolder",
                "--data-dir",
                str(tmp_path / "data"),
                "--subset",
                str(n),
                "--workers",
                "0",
                "--batch-size",
                "16",
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.split("PEAK_KB")[0])["n"] == n
        peaks[n] = int(proc.stdout.split("PEAK_KB")[1]) / 1024
    assert peaks[640] - peaks[64] < 60, peaks


@pytest.mark.slow
@pytest.mark.data
def test_shipped_cifar_run_reproduces_its_reported_error() -> None:
    """results/…/cifar_se_resnet20 reports 22.08 % top-1 error on the full CIFAR-10 test split."""
    from conftest import CIFAR_ARCHIVE

    if not CIFAR_ARCHIVE.is_file():
        pytest.skip(f"real-data test: {CIFAR_ARCHIVE} is absent")
    summary = json.loads((SHIPPED_RUN / "summary.json").read_text())
    proc = run_senet(
        "eval",
        str(SHIPPED_RUN),
        "--data-dir",
        str(CIFAR_ARCHIVE),
        "--json",
        "--workers",
        "2",
        "--batch-size",
        "250",
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["n"] == summary["val_images"] == 10000
    assert res["top1_err"] == pytest.approx(summary["val_top1_err"], abs=1e-9)  # 22.08
    assert res["top5_err"] == pytest.approx(summary["val_top5_err"], abs=1e-9)
