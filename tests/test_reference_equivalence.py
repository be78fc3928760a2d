"""Numerical equivalence with the reference implementations under the same weights (issue 2).

Each reference model (torchvision, timm modern, timm ``legacy_*`` = the original release's
structure) gets random weights and randomised BatchNorm statistics (so BN is not the identity),
its state dict goes through senet's converter (by name), and the logits must agree to 1e-4 in
float32, eval mode. The trap of PAPER.md is tested too: the original release's weights fit a
stride-in-3×3 model by shape but compute another function, and senet refuses that pairing.
"""

from __future__ import annotations

import functools

import pytest
import torch

import senet
from _helpers import randomize_bn
from senet.interop.convert import convert_state_dict
from senet.interop.weights_file import load_weights, save_weights

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

ATOL = 1e-4


@functools.lru_cache(maxsize=2)
def reference(lib: str, name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(name) if lib == "timm" else getattr(torchvision.models, name)()
    return randomize_bn(model)


def inputs(size: int = 96) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


def ours_from(ref: torch.nn.Module, name: str, source: str) -> tuple[torch.nn.Module, dict]:
    entry = senet.get_entry(name)
    conv = convert_state_dict(ref.state_dict(), source, has_se=entry.has_se)
    model = senet.create_model(name, **conv.options).eval()
    model.load_state_dict(conv.state)  # strict: every key mapped by name
    return model, conv.options


def max_diff(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert ya.shape == yb.shape
    return float((ya - yb).abs().max())


CASES = [
    # (reference library, reference name, senet name, source, layout the source implies)
    pytest.param(
        "torchvision", "resnet50", "resnet50", "torchvision", "torchvision", marks=pytest.mark.slow
    ),
    pytest.param(
        "torchvision",
        "resnext50_32x4d",
        "resnext50_32x4d",
        "torchvision",
        "torchvision",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "timm", "seresnet50", "se_resnet50", "timm", "torchvision", marks=pytest.mark.slow
    ),
    pytest.param(
        "timm", "legacy_seresnet50", "se_resnet50", "original", "caffe", marks=pytest.mark.slow
    ),
    pytest.param(
        "timm",
        "legacy_seresnext50_32x4d",
        "se_resnext50_32x4d",
        "original",
        "caffe",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "timm", "legacy_senet154", "senet154", "original", "caffe", marks=pytest.mark.slow
    ),
    # basic blocks, and timm's SE width rounding (se_divisor=8; the quick run covers it in
    # test_interop_convert.py::test_quick_round_trip_timm_se_resnet18)
    pytest.param(
        "torchvision", "resnet18", "resnet18", "torchvision", "torchvision", marks=pytest.mark.slow
    ),
    pytest.param(
        "timm", "seresnet18", "se_resnet18", "timm", "torchvision", marks=pytest.mark.slow
    ),
]


@pytest.mark.parametrize(("lib", "ref_name", "name", "source", "layout"), CASES)
def test_logits_match_reference(
    lib: str, ref_name: str, name: str, source: str, layout: str
) -> None:
    ref = reference(lib, ref_name)
    ours, options = ours_from(ref, name, source)
    assert options["layout"] == layout
    x = inputs(64 if name == "se_resnet18" else 96)
    with torch.no_grad():
        logits = ref(x)
    assert logits.abs().max() > 0.1  # not a degenerate all-zero comparison
    assert max_diff(ref, ours, x) <= ATOL


@pytest.mark.parametrize(
    ("lib", "ref_name", "name"),
    [("timm", "seresnet50", "se_resnet50"), ("timm", "legacy_seresnet50", "se_resnet50")],
)
@pytest.mark.slow
def test_auto_detection_picks_the_right_layout(lib: str, ref_name: str, name: str) -> None:
    ref = reference(lib, ref_name)
    ours, _ = ours_from(ref, name, "auto")
    assert max_diff(ref, ours, inputs(64)) <= ATOL


@pytest.mark.slow
def test_trap_original_weights_in_the_torchvision_layout_compute_another_function() -> None:
    """Positional loading into the stride-in-3×3 model "works" and is wrong; by name it matches."""
    legacy = reference("timm", "legacy_seresnet50")
    modern = timm.create_model("seresnet50").eval()
    src, dst = legacy.state_dict(), modern.state_dict()
    assert [v.shape for v in src.values()] == [
        v.shape for v in dst.values()
    ]  # same shapes, same order
    modern.load_state_dict(dict(zip(dst, src.values())))  # the positional copy loads without error
    x = inputs(64)
    assert max_diff(legacy, modern, x) > 1e-2  # ... and computes a different function

    right, options = ours_from(legacy, "se_resnet50", "original")
    assert options == {"layout": "caffe"}
    assert max_diff(legacy, right, x) <= ATOL

    # the same renamed weights in senet's torchvision-layout model also load by shape, and differ
    wrong = senet.create_model("se_resnet50", layout="torchvision").eval()
    wrong.load_state_dict(convert_state_dict(src, "original").state)
    assert max_diff(legacy, wrong, x) > 1e-2


@pytest.mark.slow
def test_trap_is_refused_when_loading(tmp_path) -> None:
    legacy = reference("timm", "legacy_seresnet50")
    raw = tmp_path / "legacy.pth"
    torch.save(legacy.state_dict(), raw)
    with pytest.raises(ValueError, match="layout"):
        senet.create_model("se_resnet50", layout="torchvision", checkpoint=raw)
    with pytest.raises(ValueError, match="layout"):
        load_weights(senet.create_model("se_resnet50", layout="torchvision"), raw)
    model = senet.create_model("se_resnet50", checkpoint=raw).eval()  # options from the key names
    assert model.build_options["layout"] == "caffe"
    assert max_diff(legacy, model, inputs(64)) <= ATOL


def test_layout_metadata_refuses_a_shape_compatible_model(tmp_path) -> None:
    """Quick version of the trap: a caffe-layout checkpoint never loads into a torchvision-layout model."""
    torch.manual_seed(0)
    caffe = randomize_bn(senet.create_model("se_resnet18"))
    path = save_weights(caffe, tmp_path / "caffe.safetensors")
    tv = senet.create_model("se_resnet18", layout="torchvision").eval()
    tv.load_state_dict(caffe.state_dict())  # fits by shape ...
    assert max_diff(caffe, tv, inputs(64)) > 1e-3  # ... and differs (stem max-pool)
    with pytest.raises(ValueError, match="layout='caffe' in the checkpoint"):
        load_weights(tv, path)
    with pytest.raises(ValueError, match="layout"):
        senet.create_model("se_resnet18", layout="torchvision", checkpoint=path)
    again = senet.create_model("se_resnet18", checkpoint=path).eval()
    assert again.build_options["layout"] == "caffe"
    assert max_diff(caffe, again, inputs(64)) == 0.0


def test_converter_refuses_mislabelled_sources() -> None:
    modern_keys = {"conv1.weight": torch.zeros(1), "layer1.0.se.fc1.weight": torch.zeros(1)}
    legacy_keys = {
        "layer0.conv1.weight": torch.zeros(1),
        "layer1.0.se_module.fc1.weight": torch.zeros(1),
    }
    with pytest.raises(ValueError, match="--from timm or --from torchvision"):
        convert_state_dict(modern_keys, "original")
    with pytest.raises(ValueError, match="--from original"):
        convert_state_dict(legacy_keys, "timm")
    with pytest.raises(ValueError, match="not supported"):
        convert_state_dict(modern_keys, "caffe2")


def test_senet154_deep_stem_key_map() -> None:
    keys = [
        "layer0.conv1.weight",
        "layer0.bn1.weight",
        "layer0.conv2.weight",
        "layer0.bn2.bias",
        "layer0.conv3.weight",
        "layer0.bn3.running_var",
        "layer1.0.se_module.fc2.bias",
        "last_linear.weight",
    ]
    conv = convert_state_dict({k: torch.zeros(2, 2) for k in keys}, "original")
    assert list(conv.state) == [
        "conv1.0.weight",
        "conv1.1.weight",
        "conv1.3.weight",
        "conv1.4.bias",
        "conv1.6.weight",
        "bn1.running_var",
        "layer1.0.se.fc2.bias",
        "fc.weight",
    ]
    assert conv.options == {"layout": "caffe"}


def test_timm_legacy_basic_blocks_are_refused() -> None:
    """timm's legacy_seresnet18/34 are not released SENets: a ReLU before SE changes the function."""
    ref = timm.create_model("legacy_seresnet18")
    with pytest.raises(ValueError, match="legacy_seresnet18/34"):
        convert_state_dict(ref.state_dict(), "auto")
