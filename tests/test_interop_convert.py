"""``senet convert`` and loading by file path (issue 5): round trips, clear errors, nothing written on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import senet
from _helpers import one_line_error, randomize_bn, run_senet
from senet.cli import main
from senet.interop.weights_file import load_model, read_metadata, save_weights

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

ATOL = 1e-4


def reference(lib: str, name: str, **kwargs: object) -> torch.nn.Module:
    torch.manual_seed(0)
    model = (
        timm.create_model(name, **kwargs)
        if lib == "timm"
        else getattr(torchvision.models, name)(**kwargs)
    )
    return randomize_bn(model)


def logits_diff(a: torch.nn.Module, b: torch.nn.Module, size: int = 64) -> float:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def leftovers(folder: Path) -> list[str]:
    """Files left in an output folder (a failed conversion leaves none, not even a temp file)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


ROUND_TRIPS = [
    # (library, reference, senet name, source, layout, pass --from?): auto-detection for the two
    # SE-ResNet-50s whose shapes coincide (the trap), an explicit --from for the others
    pytest.param(
        "timm",
        "legacy_seresnet50",
        "se_resnet50",
        "original",
        "caffe",
        False,
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "timm",
        "legacy_seresnext50_32x4d",
        "se_resnext50_32x4d",
        "original",
        "caffe",
        True,
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "timm", "seresnet50", "se_resnet50", "timm", "torchvision", False, marks=pytest.mark.slow
    ),
    pytest.param(
        "torchvision",
        "resnet50",
        "resnet50",
        "torchvision",
        "torchvision",
        True,
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("lib", "ref_name", "name", "source", "layout", "explicit"), ROUND_TRIPS)
def test_round_trip_through_the_cli(
    tmp_path: Path, lib: str, ref_name: str, name: str, source: str, layout: str, explicit: bool
) -> None:
    ref = reference(lib, ref_name)
    src, dst = tmp_path / f"{ref_name}.pth", tmp_path / f"{name}.safetensors"
    torch.save(ref.state_dict(), src)
    args = ["convert", str(src), str(dst), "--model", name] + (
        ["--from", source] if explicit else []
    )
    assert main(args) == 0
    meta = read_metadata(dst)
    assert meta["model"] == name and meta["num_classes"] == 1000
    assert meta["options"]["layout"] == layout
    assert meta["source"]["format"] == source and meta["source"]["file"] == src.name
    ours = senet.create_model(name, checkpoint=dst).eval()
    assert logits_diff(ref, ours) <= ATOL


def test_quick_round_trip_timm_se_resnet18(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """timm's seresnet18 rounds SE widths to multiples of 8: the converter must record se_divisor=8."""
    ref = reference("timm", "seresnet18", num_classes=7)
    src, dst = tmp_path / "sr18.safetensors", tmp_path / "out.safetensors"
    save_file(ref.state_dict(), str(src))  # safetensors input, no senet metadata
    assert main(["convert", str(src), str(dst), "--model", "se_resnet18"]) == 0
    assert "timm layout" in capsys.readouterr().out
    meta = read_metadata(dst)
    assert meta["options"] == {"layout": "torchvision", "se_divisor": 8}
    assert meta["num_classes"] == 7  # read from the classifier's shape
    ours = load_model(dst).eval()
    assert ours.num_classes == 7
    assert logits_diff(ref, ours) <= ATOL
    with safe_open(str(dst), framework="pt") as f:
        assert json.loads(f.metadata()["senet"])["source"]["sha256"]


@pytest.mark.slow
def test_convert_command_in_a_subprocess(tmp_path: Path) -> None:
    """`senet convert` end to end: torchvision ResNet-18 weights in, a senet file that computes
    the same function out; a file that is no checkpoint is one line and writes nothing."""
    ref = randomize_bn(torchvision.models.resnet18(num_classes=4))
    src, dst = tmp_path / "r18.pth", tmp_path / "r18.safetensors"
    torch.save(ref.state_dict(), src)
    done = run_senet("convert", src, dst, "--model", "resnet18", "--from", "torchvision")
    assert done.returncode == 0, done.stderr
    assert "torchvision layout" in done.stdout and read_metadata(dst)["num_classes"] == 4
    assert logits_diff(ref, load_model(dst).eval()) <= ATOL
    (tmp_path / "notes.txt").write_text("not weights")
    bad = run_senet(
        "convert", tmp_path / "notes.txt", tmp_path / "x.safetensors", "--model", "resnet18"
    )
    one_line_error(bad, "convert")
    assert not (tmp_path / "x.safetensors").exists()


def test_create_model_reads_a_raw_state_dict_with_prefix_and_old_bn(tmp_path: Path) -> None:
    """DataParallel's ``module.`` prefix and 2017-era files without ``num_batches_tracked`` load."""
    ref = reference("timm", "seresnet18", num_classes=5)
    state = {
        f"module.{k}": v for k, v in ref.state_dict().items() if "num_batches_tracked" not in k
    }
    raw = tmp_path / "raw.pth"
    torch.save({"state_dict": state}, raw)
    ours = senet.create_model("se_resnet18", checkpoint=raw).eval()
    assert ours.build_options == {"layout": "torchvision", "se_divisor": 8}
    assert ours.num_classes == 5
    assert logits_diff(ref, ours) <= ATOL


def test_truncated_file_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = senet.create_model("cifar_se_resnet20")
    good = tmp_path / "good.pth"
    torch.save(ref.state_dict(), good)
    for suffix in (".pth", ".safetensors"):
        bad = tmp_path / f"truncated{suffix}"
        data = good.read_bytes() if suffix == ".pth" else _safetensors_bytes(ref, tmp_path)
        bad.write_bytes(data[: len(data) // 2])
        out = tmp_path / "out" / f"out{suffix}.safetensors"
        assert main(["convert", str(bad), str(out), "--model", "cifar_se_resnet20"]) == 2
        err = capsys.readouterr().err
        assert "senet convert: error:" in err and bad.name in err
        assert "Traceback" not in err
        assert not out.exists()
    assert leftovers(tmp_path / "out") == []


def _safetensors_bytes(model: torch.nn.Module, folder: Path) -> bytes:
    p = folder / "full.safetensors"
    save_file(model.state_dict(), str(p))
    data = p.read_bytes()
    p.unlink()
    return data


def test_wrong_architecture_names_the_keys_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "r20.pth"
    torch.save(senet.create_model("cifar_resnet20").state_dict(), src)  # plain, no SE
    dst = tmp_path / "out" / "out.safetensors"
    assert (
        main(
            ["convert", str(src), str(dst), "--model", "cifar_se_resnet20", "--from", "torchvision"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "missing keys layer1.0.se.fc1" in err and "nothing was written" in err
    assert (
        main(["convert", str(src), str(dst), "--model", "cifar_resnet32", "--from", "torchvision"])
        == 2
    )
    assert "missing keys layer1.3" in capsys.readouterr().err
    torch.save(senet.create_model("cifar_resnet20", num_classes=10, in_chans=1).state_dict(), src)
    assert (
        main(["convert", str(src), str(dst), "--model", "cifar_resnet20", "--from", "torchvision"])
        == 2
    )
    assert (
        "shape mismatches conv1.weight: checkpoint (16, 1, 3, 3) vs model (16, 3, 3, 3)"
        in capsys.readouterr().err
    )
    assert leftovers(tmp_path / "out") == []


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "r20.pth", tmp_path / "out"
    torch.save(senet.create_model("cifar_resnet20").state_dict(), src)
    assert (
        main(
            [
                "convert",
                str(tmp_path / "missing.pth"),
                str(out / "o.safetensors"),
                "--model",
                "resnet18",
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["convert", str(src), str(out / "o.pt"), "--model", "cifar_resnet20"]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err
    assert main(["convert", str(src), str(out / "o.safetensors"), "--model", "cifar_resnet21"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert (
        main(
            [
                "convert",
                str(src),
                str(out / "o.safetensors"),
                "--model",
                "cifar_resnet20",
                "--from",
                "original",
            ]
        )
        == 2
    )
    assert "--from timm or --from torchvision" in capsys.readouterr().err
    assert leftovers(out) == []


def test_class_names_are_stored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst, names = tmp_path / "r20.pth", tmp_path / "r20.safetensors", tmp_path / "classes.txt"
    torch.save(senet.create_model("cifar_resnet20").state_dict(), src)
    names.write_text("\n".join(f"c{i}" for i in range(9)) + "\n")
    args = ["convert", str(src), str(dst), "--model", "cifar_resnet20", "--classes", str(names)]
    assert main(args) == 2
    assert "9 class names given for a 10-class model" in capsys.readouterr().err
    names.write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    assert main(args) == 0
    assert read_metadata(dst)["classes"] == [f"c{i}" for i in range(10)]


def test_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    path = save_weights(senet.create_model("cifar_resnet20"), tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="holds cifar_resnet20, not cifar_resnet32"):
        senet.create_model("cifar_resnet32", checkpoint=path)
    model = senet.create_model(
        "cifar_resnet20", checkpoint=path, drop_rate=0.5
    )  # eval-neutral option
    assert model.checkpoint_metadata["model"] == "cifar_resnet20"


def test_raw_state_dict_of_a_family_without_layouts(tmp_path: Path) -> None:
    """Families without a ``layout`` option (MobileNet here) load raw state dicts too."""
    torch.manual_seed(0)
    ref = randomize_bn(senet.create_model("se_mobilenet_v1", num_classes=3))
    raw = tmp_path / "m.pth"
    torch.save(ref.state_dict(), raw)
    ours = senet.create_model("se_mobilenet_v1", checkpoint=raw).eval()
    assert ours.num_classes == 3 and "layout" not in ours.build_options
    assert logits_diff(ref, ours, size=32) == 0.0


@pytest.mark.slow
def test_timm_inception_resnet_v2_converts(tmp_path: Path) -> None:
    """timm's TF-slim key names are mapped by senet.interop.maps_inception."""
    ref = reference("timm", "inception_resnet_v2", num_classes=10)
    src, dst = tmp_path / "irv2.pth", tmp_path / "irv2.safetensors"
    torch.save(ref.state_dict(), src)
    assert main(["convert", str(src), str(dst), "--model", "inception_resnet_v2"]) == 0
    ours = senet.create_model("inception_resnet_v2", checkpoint=dst).eval()
    assert logits_diff(ref, ours, size=107) <= ATOL


def test_non_checkpoint_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torchvision

    files = {
        "text.pth": (
            lambda p: p.write_text("hello"),
            "is not a PyTorch checkpoint or safetensors file (it is neither a zip archive",
        ),
        "random.pth": (
            lambda p: p.write_bytes(bytes(range(7, 256)) * 4),
            "is not a PyTorch checkpoint or safetensors file (it is neither a zip archive",
        ),
        "broken_pickle.pth": (
            lambda p: p.write_bytes(b"\x80\x02garbage"),
            "is not a readable PyTorch checkpoint (damaged or truncated?)",
        ),
        "whole.pth": (
            lambda p: torch.save(torchvision.models.resnet18(), p),
            "pickles Python objects",
        ),
        "epoch.pth": (lambda p: torch.save({"epoch": 3}, p), "holds no tensors (keys: epoch)"),
        "tensor.pth": (lambda p: torch.save(torch.zeros(3), p), "holds a Tensor, not a state dict"),
        "text.safetensors": (
            lambda p: p.write_text("{}" * 50),
            "is not a readable safetensors file",
        ),
    }
    for name, (write, message) in files.items():
        src = tmp_path / name
        write(src)
        assert (
            main(["convert", str(src), str(tmp_path / "out.safetensors"), "--model", "resnet18"])
            == 2
        )
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert "KeyError" not in err and "Weights only" not in err, err
    assert not (tmp_path / "out.safetensors").exists()
