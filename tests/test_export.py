"""``senet export``: ONNX (checked with onnxruntime), TorchScript and torch.export match PyTorch (issue 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import senet
from _helpers import run_senet
from senet.cli import main
from senet.interop.export import export_model
from senet.interop.weights_file import save_weights

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ATOL = 1e-4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A small SE network with non-trivial BN statistics, saved with metadata (32×32 input)."""
    torch.manual_seed(0)
    model = senet.create_model("cifar_se_resnet20")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.75, 1.25)
    path = tmp_path_factory.mktemp("ckpt") / "c20.safetensors"
    save_weights(model, path, {"input_size": 32, "classes": [f"k{i}" for i in range(10)]})
    return path, model.eval()


def test_onnx_from_checkpoint_matches_pytorch_with_dynamic_batch(
    checkpoint: tuple[Path, torch.nn.Module], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, model = checkpoint
    out = tmp_path / "c20.onnx"
    assert main(["export", str(path), "--format", "onnx", "--out", str(out)]) == 0
    assert "dynamic batch" in capsys.readouterr().out
    proto = onnx.load(str(out))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["senet"])
    assert meta["model"] == "cifar_se_resnet20" and meta["classes"][3] == "k3"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # the export was traced at batch 1
        x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
        (y,) = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            ref = model(x)
        assert y.shape == (batch, 10)
        assert float((torch.from_numpy(y) - ref).abs().max()) <= ATOL


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:FutureWarning")
def test_torchscript_matches_pytorch(
    checkpoint: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    path, model = checkpoint
    out = tmp_path / "c20.pt"
    assert main(["export", str(path), "--format", "torchscript", "--out", str(out)]) == 0
    extra = {"senet.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["senet.json"])["input_size"] == 32
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert float((loaded(x) - model(x)).abs().max()) <= ATOL


@pytest.mark.slow
def test_torch_export_program_matches_pytorch(
    checkpoint: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    path, model = checkpoint
    out = tmp_path / "c20.pt2"
    assert main(["export", str(path), "--format", "export", "--out", str(out)]) == 0
    loaded = torch.export.load(str(out)).module()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert float((loaded(x) - model(x)).abs().max()) <= ATOL


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_se_resnet50_exports_match(tmp_path: Path, fmt: str) -> None:
    """The paper's network (Caffe layout: ceil-mode max-pool, stride in the 1×1) exports exactly."""
    model = senet.create_model("se_resnet50").eval()
    report = export_model(model, tmp_path / f"m.{fmt}", fmt, input_size=96)
    assert report.max_abs_diff is not None and report.max_abs_diff <= ATOL
    assert report.check_batch == 2


def test_bad_export_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="format 'tflite' is not supported"):
        export_model(torch.nn.Identity(), tmp_path / "x", "tflite")
    assert main(["export", str(tmp_path / "missing.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", "se_resnet05"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bad_export_arguments_are_one_line(
    checkpoint: tuple[Path, torch.nn.Module], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = checkpoint
    cases = [
        (["--input-size", "0"], "--input-size 0 must be a positive integer"),
        (["--input-size", "-5"], "--input-size -5 must be a positive integer"),
        (
            ["--opset", "7"],
            "--opset 7 is not supported: senet's networks export with opsets 10 to 20",
        ),
        (["--atol", "0"], "--atol 0.0 must be > 0"),
        (
            ["-o", str(tmp_path / "x.onnx")],
            "-o sets a model option (KEY=VALUE); write the output file with --out",
        ),
    ]
    for extra, message in cases:
        assert main(["export", str(path), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert (
        main(["export", "bn_inception", "--input-size", "8", "--out", str(tmp_path / "b.onnx")])
        == 2
    )
    err = capsys.readouterr().err.splitlines()[-1]
    assert "--input-size 8 does not fit bn_inception (Given input size" in err
    assert list(tmp_path.iterdir()) == []


def test_exporter_failure_is_one_line(tmp_path: Path) -> None:
    """PyTorch's exporter appends the whole TorchScript graph to its errors: senet keeps one line."""
    model = senet.create_model("cifar_se_resnet20").eval()  # strided-slice shortcut: opset ≥ 10
    with pytest.raises(RuntimeError) as info:
        export_model(model, tmp_path / "m.onnx", "onnx", input_size=32, opset=9)
    assert "ONNX export at opset 9 failed" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_export_subprocess_writes_the_file(
    checkpoint: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:

    out = tmp_path / "sub" / "c20.onnx"
    proc = run_senet("export", checkpoint[0], "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "input N×3×32×32" in proc.stdout
    bad = run_senet("export", checkpoint[0], "--opset", "7")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
