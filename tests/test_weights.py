"""Pretrained weights by name (issue 11, items 1–2): registry, download/cache/hash, adaptation.

Files are served from a local HTTP server on 127.0.0.1 (``_serve.serve``); nothing here reaches
the internet. Registered entries are pointed at that server with ``dataclasses.replace`` (their
source, transform and conversion stay the entry's own).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import senet
from _helpers import randomize_bn, run_senet
from _serve import serve
from senet.interop.convert import convert_for_model, fill_batch_counters
from senet.interop.weights_file import mismatch_report, save_weights
from senet.models.registry import build_model
from senet.weights import (
    HashMismatchError,
    WeightsUnavailableError,
    adapt_input_conv,
    cached_file,
    get_weights,
    list_weights,
    register,
    unregister,
)
from senet.weights.registry import Mirror, WeightsEntry

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

ATOL = 1e-4

#: the reference architecture (library, name) each registered (model, source) pair is converted from
REFERENCES: dict[tuple[str, str], tuple[str, str]] = {
    ("se_resnet50", "original"): ("timm", "legacy_seresnet50"),
    ("se_resnet101", "original"): ("timm", "legacy_seresnet101"),
    ("se_resnet152", "original"): ("timm", "legacy_seresnet152"),
    ("se_resnext50_32x4d", "original"): ("timm", "legacy_seresnext50_32x4d"),
    ("se_resnext101_32x4d", "original"): ("timm", "legacy_seresnext101_32x4d"),
    ("senet154", "original"): ("timm", "legacy_senet154"),
    ("se_resnet50", "timm"): ("timm", "seresnet50"),
    ("se_resnext50_32x4d", "timm"): ("timm", "seresnext50_32x4d"),
    ("se_resnext101_32x4d", "timm"): ("timm", "seresnext101_32x4d"),
    ("senet154", "timm"): ("timm", "senet154"),
    ("resnext50_32x4d", "timm"): ("timm", "resnext50_32x4d"),
    ("resnext101_32x4d", "timm"): ("timm", "resnext101_32x4d"),
    ("inception_resnet_v2", "timm"): ("timm", "inception_resnet_v2"),
    ("resnet18", "torchvision"): ("torchvision", "resnet18"),
    ("resnet34", "torchvision"): ("torchvision", "resnet34"),
    ("resnet50", "torchvision"): ("torchvision", "resnet50"),
    ("resnet101", "torchvision"): ("torchvision", "resnet101"),
    ("resnet152", "torchvision"): ("torchvision", "resnet152"),
    ("resnext50_32x4d", "torchvision"): ("torchvision", "resnext50_32x4d"),
    ("vgg16_bn", "torchvision"): ("torchvision", "vgg16_bn"),
}


def build_reference(lib: str, name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model(name) if lib == "timm" else getattr(torchvision.models, name)()
    return randomize_bn(model, seed)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty SENET_HOME for the test."""
    root = tmp_path / "senet_home"
    monkeypatch.setenv("SENET_HOME", str(root))
    monkeypatch.delenv("SENET_OFFLINE", raising=False)
    return root


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A served folder: (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    with serve(folder) as url:
        yield folder, url


@contextlib.contextmanager
def moved(entry_name: str, url: str, digest: str | None, mirrors: tuple[Mirror, ...] = ()):
    """The catalog entry ``entry_name`` served from ``url`` with hash ``digest`` while the block runs."""
    model, tag = entry_name.split(".")
    original = get_weights(model, tag)
    register_entry(dataclasses.replace(original, url=url, sha256=digest, mirrors=mirrors))
    try:
        yield get_weights(model, tag)
    finally:
        register_entry(original)


def register_entry(e: WeightsEntry) -> None:
    register(
        e.model,
        e.tag,
        url=e.url,
        sha256=e.sha256,
        source=e.source,
        top1=e.top1,
        num_classes=e.num_classes,
        mirrors=e.mirrors,
        preprocessing=e.preprocessing,
        reference=e.reference,
        description=e.description,
        overwrite=True,
    )


def serve_reference(
    folder: Path, base: str, lib: str, ref_name: str, file: str, legacy: bool = False
):
    """Save a random reference model's state dict as ``file`` in the served folder."""
    ref = build_reference(lib, ref_name)
    path = folder / file
    torch.save(ref.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    return ref, f"{base}/{file}", sha256(path)


def logits_diff(a: torch.nn.Module, b: torch.nn.Module, size: int = 64) -> float:
    """Max logit difference, relative to the logits' scale when that exceeds 1 (random deep
    networks with randomised BN statistics reach logits of 1e6 and more)."""
    dtype = next(a.parameters()).dtype
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=dtype)
    with torch.no_grad():
        ya, yb = a.eval()(x), b.eval()(x)
    return float((ya - yb).abs().max() / ya.abs().max().clamp_min(1.0))


def small_file(folder: Path, name: str = "c20-0000.safetensors", seed: int = 0) -> Path:
    """A tiny senet weights file (cifar_resnet20 with metadata)."""
    torch.manual_seed(seed)
    model = randomize_bn(senet.create_model("cifar_resnet20"), seed)
    return save_weights(
        model, folder / name, {"input_size": 32, "classes": [f"c{i}" for i in range(10)]}
    )


@pytest.fixture
def user_entry() -> Iterator[None]:
    """Removes the test's own ``cifar_resnet20.*`` registrations afterwards."""
    yield
    for e in list_weights("cifar_resnet20.*"):
        unregister(e.model, e.tag)


# ---------------------------------------------------------------------------------------------
# the catalog
# ---------------------------------------------------------------------------------------------
def test_every_entry_has_a_reference_architecture() -> None:
    """The slow tests below load every registered (model, source) pair from its reference."""
    for e in list_weights():
        assert (e.model, e.source) in REFERENCES, f"{e.name}: add its reference architecture"


@pytest.mark.slow
def test_every_entry_maps_every_key_of_its_reference_architecture() -> None:
    """Each registered entry's conversion maps a reference state dict (built on the meta device)."""
    for (model, source), (lib, ref_name) in REFERENCES.items():
        with torch.device("meta"):
            ref = (
                timm.create_model(ref_name)
                if lib == "timm"
                else getattr(torchvision.models, ref_name)()
            )
            conv = convert_for_model(ref.state_dict(), model, source)
            ours = build_model(model, **conv.options)
        state, own = dict(conv.state), ours.state_dict()
        fill_batch_counters(state, own)
        assert mismatch_report(own, state) == "", (model, source)
        assert conv.num_classes == 1000


def test_catalog_fields() -> None:
    entries = list_weights()
    assert len(entries) == 28
    for e in entries:
        assert e.hash_kind == "sha256-prefix" and len(e.sha256) == 8
        assert e.url.rsplit("/", 1)[-1].split("-")[-1].startswith(e.sha256)
        assert e.top1 is not None and 69 < e.top1 < 83
        assert e.preprocessing.input_size in (224, 299)
        assert e.reference
    assert get_weights("se_resnet50").tag == "original"  # the paper's weights are the default
    assert get_weights("resnext50_32x4d").tag == "tv_in1k"
    original = get_weights("se_resnet50", "original")
    assert (
        original.preprocessing.resize_size == 256
        and original.preprocessing.interpolation == "bilinear"
    )
    assert [m.url for m in original.mirrors] == [
        "http://data.lip6.fr/cadene/pretrainedmodels/se_resnet50-ce0d4300.pth"
    ]
    assert get_weights("senet154").mirrors[0].sha256 == "c7b49a05"
    assert get_weights("inception_resnet_v2").preprocessing.resize_size == 333  # 299 / 0.8975


def test_torchvision_entries_match_the_installed_torchvision() -> None:
    for e in list_weights():
        if e.source != "torchvision":
            continue
        cls_name, member = e.reference.split("torchvision.models.")[1].rstrip(")").split(".")
        weights = getattr(getattr(torchvision.models, cls_name), member)
        t = weights.transforms()
        assert e.url == weights.url
        assert e.top1 == weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        assert e.preprocessing.input_size == t.crop_size[0]
        assert e.preprocessing.resize_size == t.resize_size[0]
        assert list(e.preprocessing.mean) == list(t.mean) and list(e.preprocessing.std) == list(
            t.std
        )


# ---------------------------------------------------------------------------------------------
# download, cache, hash
# ---------------------------------------------------------------------------------------------
def test_download_once_then_offline_from_the_cache(
    home: Path, files: tuple[Path, str], user_entry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, base = files
    path = small_file(folder)
    register(
        "cifar_resnet20",
        "test",
        url=f"{base}/{path.name}",
        sha256=sha256(path),
        source="senet",
        input_size=32,
        resize=32,
    )
    model = senet.create_model("cifar_resnet20", pretrained=True)
    cached = home / "weights" / "cifar_resnet20" / "test" / path.name
    assert cached.is_file() and cached.read_bytes() == path.read_bytes()
    assert cached_file(get_weights("cifar_resnet20")) == cached
    ref = senet.create_model("cifar_resnet20", checkpoint=path)
    assert logits_diff(ref, model, 32) == 0.0
    assert model.checkpoint_metadata["classes"][0] == "c0"
    assert model.checkpoint_metadata["source"]["weights"] == "cifar_resnet20.test"
    path.unlink()  # the server no longer has it, and the network is forbidden: the cache serves
    monkeypatch.setenv("SENET_OFFLINE", "1")
    again = senet.create_model("cifar_resnet20", pretrained="test")
    assert logits_diff(ref, again, 32) == 0.0


def test_hash_mismatch_is_a_clear_error_and_caches_nothing(
    home: Path, files: tuple[Path, str], user_entry: None
) -> None:
    folder, base = files
    path = small_file(folder)
    wrong = "0" * 64
    register("cifar_resnet20", "bad", url=f"{base}/{path.name}", sha256=wrong[:10], source="senet")
    with pytest.raises(
        HashMismatchError,
        match=r"has sha256 [0-9a-f]{64}, but weights cifar_resnet20.bad are registered with 0000000000.*nothing was cached",
    ):
        senet.create_model("cifar_resnet20", pretrained="bad")
    assert not any(p.is_file() for p in home.rglob("*")) if home.exists() else True


def test_offline_without_cache_names_the_url_and_senet_convert(
    home: Path, user_entry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(home.parent) as base:  # a server that is then stopped: connection refused
        url = f"{base}/gone-12345678.pth"
    register("cifar_resnet20", "gone", url=url, sha256="12345678", source="timm")
    with pytest.raises(WeightsUnavailableError) as info:
        senet.create_model("cifar_resnet20", pretrained="gone")
    msg = str(info.value)
    assert "\n" not in msg and url in msg
    assert (
        "senet convert FILE cifar_resnet20_gone.safetensors --model cifar_resnet20 --from timm"
        in msg
    )
    monkeypatch.setenv("SENET_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="SENET_OFFLINE is set"):
        senet.create_model("cifar_resnet20", pretrained="gone")


def test_a_failing_url_falls_back_to_a_mirror(
    home: Path, files: tuple[Path, str], user_entry: None
) -> None:
    folder, base = files
    path = small_file(folder, "copy-0001.safetensors")
    register(
        "cifar_resnet20",
        "mirrored",
        url=f"{base}/missing-0002.safetensors",
        sha256="00000002",
        mirrors=((f"{base}/{path.name}", sha256(path)[:8]),),
        source="senet",
    )
    senet.create_model("cifar_resnet20", pretrained="mirrored")
    assert cached_file(get_weights("cifar_resnet20", "mirrored")).name == path.name


def test_a_file_without_known_hash_is_checked_by_format(
    home: Path, files: tuple[Path, str], user_entry: None
) -> None:
    folder, base = files
    (folder / "junk.pth").write_bytes(b"not a checkpoint")
    register("cifar_resnet20", "nohash", url=f"{base}/junk.pth", sha256=None, source="timm")
    assert get_weights("cifar_resnet20", "nohash").hash_kind == "none"
    with pytest.raises(HashMismatchError, match="not a readable weights file"):
        senet.create_model("cifar_resnet20", pretrained="nohash")
    assert cached_file(get_weights("cifar_resnet20", "nohash")) is None


def test_served_torchvision_weights_load_exactly(home: Path, files: tuple[Path, str]) -> None:
    """resnet18.tv_in1k end to end: download, hash, conversion (layout), transform, logits."""
    folder, base = files
    ref, url, digest = serve_reference(folder, base, "torchvision", "resnet18", "resnet18-x.pth")
    with moved("resnet18.tv_in1k", url, digest[:8]):
        ours = senet.create_model("resnet18", pretrained=True)
    assert ours.build_options["layout"] == "torchvision"
    assert logits_diff(ref, ours) <= ATOL
    meta = ours.checkpoint_metadata
    assert (meta["input_size"], meta["resize"], meta["interpolation"]) == (224, 256, "bilinear")
    assert meta["source"]["weights"] == "resnet18.tv_in1k" and meta["num_classes"] == 1000


# ---------------------------------------------------------------------------------------------
# fine-tuning: num_classes, in_chans
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def served_c20(home: Path, files: tuple[Path, str], user_entry: None) -> Path:
    folder, base = files
    path = small_file(folder)
    register(
        "cifar_resnet20", "base", url=f"{base}/{path.name}", sha256=sha256(path), source="senet"
    )
    return path


def test_new_num_classes_keeps_every_other_tensor(served_c20: Path) -> None:
    ref = senet.create_model("cifar_resnet20", checkpoint=served_c20)
    model = senet.create_model("cifar_resnet20", pretrained=True, num_classes=3)
    assert model.num_classes == 3 and model.fc.weight.shape == (3, 64)
    own, src = model.state_dict(), ref.state_dict()
    assert all(torch.equal(own[k], src[k]) for k in src if not k.startswith("fc."))
    assert model.pretrained_cfg["reinitialised"] == ["fc.weight", "fc.bias"]
    assert "classes" not in model.checkpoint_metadata  # the old names no longer apply
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(
        model.forward_head(model.forward_features(x), pre_logits=True),
        ref.forward_head(ref.forward_features(x), pre_logits=True),
    )


def test_one_channel_input_sums_the_rgb_filters(served_c20: Path) -> None:
    ref = senet.create_model("cifar_resnet20", checkpoint=served_c20).eval()
    grey = senet.create_model("cifar_resnet20", pretrained=True, in_chans=1).eval()
    assert grey.conv1.weight.shape[1] == 1
    assert grey.pretrained_cfg["adapted"] == ["conv1.weight"]
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():  # a grey image is R = G = B: the adapted model sees the same input
        assert float((grey(x) - ref(x.expand(-1, 3, -1, -1))).abs().max()) <= 1e-5
    meta = grey.checkpoint_metadata
    assert meta["in_chans"] == 1 and len(meta["mean"]) == 1 and len(meta["std"]) == 1


def test_more_input_channels_repeat_and_rescale() -> None:
    w = torch.randn(8, 3, 3, 3)
    w5 = adapt_input_conv(5, w)
    assert w5.shape == (8, 5, 3, 3)
    assert torch.allclose(w5[:, :3], w * 3 / 5) and torch.allclose(w5[:, 3:], w[:, :2] * 3 / 5)
    assert torch.allclose(adapt_input_conv(1, w), w.sum(1, keepdim=True))
    assert adapt_input_conv(3, w) is w
    with pytest.raises(ValueError, match="cannot adapt a 4-channel"):
        adapt_input_conv(2, torch.randn(8, 4, 3, 3))


def test_headless_and_features_only(served_c20: Path) -> None:
    headless = senet.create_model("cifar_resnet20", pretrained=True, num_classes=0)
    assert headless.num_classes == 0 and headless(torch.randn(2, 3, 32, 32)).shape == (2, 64)
    assert senet.create_model("resnet18", num_classes=0)(torch.randn(1, 3, 64, 64)).shape == (
        1,
        512,
    )
    feats = senet.create_model("cifar_resnet20", pretrained=True, features_only=True)
    assert [f.shape[1] for f in feats(torch.randn(1, 3, 32, 32))] == [16, 32, 64]


def test_local_file_as_pretrained(tmp_path: Path) -> None:
    path = small_file(tmp_path)
    model = senet.create_model("cifar_resnet20", pretrained=str(path), num_classes=4, in_chans=1)
    assert model.num_classes == 4 and model.conv1.weight.shape[1] == 1
    assert model.pretrained_cfg["file"] == str(path)


def test_bad_pretrained_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="did you mean num_classes=10"):
        senet.create_model("resnet18", 10)
    with pytest.raises(ValueError, match="has no weights tagged 'orignal'; did you mean original"):
        senet.create_model("se_resnet50", pretrained="orignal")
    with pytest.raises(ValueError, match="no pretrained weights are registered for cifar_resnet56"):
        senet.create_model("cifar_resnet56", pretrained=True)
    with pytest.raises(ValueError, match="belong to se_resnet50, not resnet50"):
        senet.create_model("resnet50", pretrained="se_resnet50.original")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        senet.create_model("resnet50", pretrained=str(tmp_path / "nope.pth"))
    with pytest.raises(ValueError, match="not both"):
        senet.create_model("resnet50", pretrained=True, checkpoint="x.safetensors")
    with pytest.raises(ValueError, match="or 0 for no classifier"):
        senet.create_model("resnet50", num_classes=-1)


def test_explicit_option_contradicting_the_weights_is_refused(served_c20: Path) -> None:
    with pytest.raises(ValueError, match="layout"):
        senet.create_model("cifar_resnet20", pretrained=True, layout="preact")


def test_register_validates_its_input(user_entry: None) -> None:
    with pytest.raises(ValueError, match="unknown model 'se_resnet5'"):
        register("se_resnet5", "x", url="https://x/y.pth", sha256=None, source="timm")
    with pytest.raises(ValueError, match="source 'caffe' is not supported"):
        register("cifar_resnet20", "x", url="https://x/y.pth", sha256=None, source="caffe")
    with pytest.raises(ValueError, match="8 to 64 hex digits"):
        register("cifar_resnet20", "x", url="https://x/y.pth", sha256="xyz", source="timm")
    with pytest.raises(ValueError, match="must start with http"):
        register("cifar_resnet20", "x", url="/local/y.pth", sha256=None, source="timm")
    with pytest.raises(ValueError, match="crop_pct"):
        register(
            "cifar_resnet20", "x", url="https://x/y.pth", sha256=None, source="timm", crop_pct=2
        )
    register("cifar_resnet20", "x", url="https://x/y.pth", sha256=None, source="timm")
    with pytest.raises(ValueError, match="already registered"):
        register("cifar_resnet20", "x", url="https://x/y.pth", sha256=None, source="timm")


# ---------------------------------------------------------------------------------------------
# every (model, source) pair end to end (slow: full-size networks)
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _entries_by_pair() -> dict[tuple[str, str], str]:
    return {(e.model, e.source): e.name for e in reversed(list_weights())}


@pytest.mark.slow
@pytest.mark.parametrize(("model", "source"), sorted(REFERENCES))
def test_served_entry_loads_and_matches_its_reference(
    model: str, source: str, home: Path, files: tuple[Path, str]
) -> None:
    folder, base = files
    lib, ref_name = REFERENCES[(model, source)]
    name = _entries_by_pair()[(model, source)]
    ref, url, digest = serve_reference(
        folder, base, lib, ref_name, f"{ref_name}-x.pth", legacy=source == "original"
    )
    with moved(name, url, digest):
        ours = senet.create_model(model, pretrained=name.split(".")[1])
    size = 96 if model == "inception_resnet_v2" else 64
    # float64: random 100+-layer networks with randomised BN statistics amplify round-off
    # (legacy_seresnet152 in float32 differs from itself in float64 by 40% of its logits' scale);
    # a wrong layout or key map gives differences of the logits' own size
    assert logits_diff(ref.double(), ours.double(), size) <= ATOL


def test_torch_hub_loads_from_the_local_checkout(served_c20: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    model = torch.hub.load(
        str(repo), "cifar_resnet20", source="local", pretrained=True, num_classes=5
    )
    ref = senet.create_model("cifar_resnet20", checkpoint=served_c20)
    assert model.num_classes == 5
    assert torch.equal(model.conv1.weight, ref.conv1.weight)
    plain = torch.hub.load(str(repo), "resnet18", source="local")
    assert plain.model_name == "resnet18"


# ---------------------------------------------------------------------------------------------
# the CLI: senet weights, and names in predict/eval
# ---------------------------------------------------------------------------------------------
def test_weights_command_lists_and_downloads(
    served_c20: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from senet.cli import main

    assert main(["weights", "se_resnet50"]) == 0
    out = capsys.readouterr().out
    assert "original *" in out and "77.64" in out and "256→224 bilinear" in out
    assert "se_resnext50_32x4d" not in out and "5 entries" in out
    assert main(["weights", "cifar_resnet20", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["cached"] is None and row["default"] and row["source"] == "senet"
    assert main(["weights", "cifar_resnet20", "--download"]) == 0
    assert "cifar_resnet20.base:" in capsys.readouterr().out
    assert main(["weights", "cifar_resnet20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["cached"].endswith(served_c20.name)
    assert main(["weights", "nothing_like_this"]) == 2
    assert "no registered weights match 'nothing_like_this'" in capsys.readouterr().err


def test_registered_names_in_predict_and_eval(
    served_c20: Path, tiny_imagefolder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from senet.cli import main

    val = tiny_imagefolder / "val" / "bars"
    assert (
        main(["predict", "cifar_resnet20.base", str(val / "000*.png"), "--json", "--topk", "2"])
        == 0
    )
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert len(rows) == 8 and all(r["top1"].startswith("c") for r in rows)  # the file's class names
    assert "using weights cifar_resnet20.base" in captured.err
    assert main(["predict", "cifar_resnet20.bsae", str(val)]) == 2
    assert "did you mean base" in capsys.readouterr().err


@pytest.mark.slow
def test_weights_command_in_a_subprocess(tmp_path: Path) -> None:

    env = {"SENET_HOME": str(tmp_path)}
    proc = run_senet("weights", "*.original", "--json", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {r["model"] for r in rows} == {
        "se_resnet50",
        "se_resnet101",
        "se_resnet152",
        "se_resnext50_32x4d",
        "se_resnext101_32x4d",
        "senet154",
    }
    offline = run_senet(
        "predict", "senet154", tmp_path / "cat.jpg", env={**env, "SENET_OFFLINE": "1"}, timeout=300
    )
    assert offline.returncode == 2 and "Traceback" not in offline.stderr
    (line,) = [x for x in offline.stderr.splitlines() if "error:" in x]
    assert "legacy_senet154-e9eb9fe6.pth" in line and "senet convert FILE" in line


def test_a_senet_file_keeps_its_own_transform(served_c20: Path) -> None:
    """The served file records input_size 32 (a CIFAR net); the entry registered none."""
    model = senet.create_model("cifar_resnet20", pretrained=True)
    assert model.checkpoint_metadata["input_size"] == 32
    assert model.pretrained_cfg["preprocessing"].input_size == 32
