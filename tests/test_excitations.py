"""Excitation recording, aggregation, persistence and figures (Sec. 7.2, Figs. 6–7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import senet
from senet.analysis import excitations as ex
from senet.analysis import plots
from senet.layers.se import SEConfig
from senet.models.shakeshake import ShakeShakeResNet


def _batches(n: int = 12, k: int = 3, bs: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.arange(n) % k
    return [(x[i : i + bs], y[i : i + bs]) for i in range(0, n, bs)]


def _set_gates(model: torch.nn.Module, bias_fn) -> dict[str, torch.Tensor]:
    """Zero both FC weights so that s = gate(b2) whatever the input; return b2 per block."""
    expected = {}
    with torch.no_grad():
        for info in ex.find_se_blocks(model):
            se = model.get_submodule(info.path)
            se.fc1.weight.zero_()
            se.fc2.weight.zero_()
            se.fc1.bias.uniform_(-1, 1)
            b = bias_fn(info.channels)
            se.fc2.bias.copy_(b)
            expected[info.name] = b
    return expected


def test_paper_names_and_default_blocks() -> None:
    model = senet.create_model("cifar_se_resnet20", num_classes=3)
    blocks = ex.find_se_blocks(model)
    assert [b.name for b in blocks][:4] == ["SE_2_1", "SE_2_2", "SE_2_3", "SE_3_1"]
    assert blocks[2].path == "layer1.2.se" and blocks[2].channels == 16
    assert ex.default_blocks(blocks) == ["SE_2_3", "SE_3_3", "SE_4_1", "SE_4_2", "SE_4_3"]
    assert ex.paper_block_name("features.layer3.5.se") == "SE_4_6"
    shake = ShakeShakeResNet(num_classes=3, se=SEConfig(reduction=4), depth=14, width=8)
    names = [b.name for b in ex.find_se_blocks(shake)]
    assert names[:4] == ["SE_2_1a", "SE_2_1b", "SE_2_2a", "SE_2_2b"] and len(names) == 12
    last_stage = ["SE_4_1a", "SE_4_1b", "SE_4_2a", "SE_4_2b"]
    assert ex.default_blocks(ex.find_se_blocks(shake)) == ["SE_2_2b", "SE_3_2b", *last_stage]


@pytest.mark.parametrize(
    ("options", "gate_fn"),
    [
        ({}, torch.sigmoid),
        ({"gate": "relu"}, torch.relu),
        ({"gate": "tanh", "integration": "3x3"}, torch.tanh),
        ({"squeeze": "none"}, torch.sigmoid),  # NoSqueeze: N×C×H×W gates, averaged spatially
        ({"integration": "pre"}, torch.sigmoid),
    ],
)
def test_hand_set_gates_are_recorded_exactly(options, gate_fn) -> None:
    torch.manual_seed(0)
    model = senet.create_model("cifar_se_resnet20", num_classes=3, **options)
    expected = _set_gates(model, lambda c: torch.linspace(-2.0, 2.0, c))
    stats = ex.collect_excitations(model, _batches(), num_classes=3, progress=False)
    assert set(stats.names) == set(expected)
    for name, b in expected.items():
        want = gate_fn(b).double().numpy()
        np.testing.assert_allclose(stats.class_mean(name), np.tile(want, (3, 1)), rtol=0, atol=1e-6)
        np.testing.assert_allclose(stats.class_std(name), 0.0, atol=1e-6)
        assert stats.counts[name].tolist() == [4, 4, 4]
        assert stats.specificity(name)["eta2"] == 0.0


def test_recording_changes_nothing_and_cleans_up() -> None:
    torch.manual_seed(0)
    model = senet.create_model("cifar_se_resnet20", num_classes=3).eval()
    x = torch.randn(2, 3, 8, 8)
    ref = model(x)
    seen = []
    with ex.record_excitations(model, lambda n, s: seen.append((n, s.shape))):
        out = model(x)
    assert torch.equal(out, ref)
    assert len(seen) == 9 and seen[0] == ("SE_2_1", torch.Size([2, 16]))
    assert all("excitation" not in m.__dict__ for m in model.modules())


def test_streaming_statistics_match_direct_computation(tmp_path) -> None:
    torch.manual_seed(1)
    model = senet.create_model("cifar_se_resnet20", num_classes=3).eval()
    raw: dict[str, list[torch.Tensor]] = {}
    data = _batches(n=18, bs=5)
    with (
        ex.record_excitations(model, lambda n, s: raw.setdefault(n, []).append(s)),
        torch.no_grad(),
    ):
        for x, _ in data:
            model(x)
    labels = torch.cat([y for _, y in data]).numpy()
    stats = ex.collect_excitations(
        model, data, num_classes=3, classes=["a", "b", "c"], progress=False
    )
    for name in ("SE_2_1", "SE_4_3"):
        s = torch.cat(raw[name]).double().numpy()
        for k in range(3):
            np.testing.assert_allclose(
                stats.class_mean(name)[k], s[labels == k].mean(0), atol=1e-10
            )
            np.testing.assert_allclose(stats.class_std(name)[k], s[labels == k].std(0), atol=1e-7)
        np.testing.assert_allclose(stats.overall_mean(name), s.mean(0), atol=1e-10)
        between = np.var([s[labels == k].mean(0) for k in range(3)], axis=0)
        total = s.var(0)
        eta2 = np.where(total > 1e-12, between / np.where(total > 1e-12, total, 1.0), 0.0)
        np.testing.assert_allclose(stats.specificity(name)["eta2"], eta2.mean(), atol=1e-7)
    # persistence round trip
    path = stats.save(tmp_path / "exc.npz")
    back = ex.ExcitationStats.load(path)
    assert back.names == stats.names and back.classes == ["a", "b", "c"]
    np.testing.assert_array_equal(back.class_mean("SE_3_2"), stats.class_mean("SE_3_2"))


def test_max_per_class_and_bad_input() -> None:
    model = senet.create_model("cifar_se_resnet20", num_classes=3)
    stats = ex.collect_excitations(
        model, _batches(n=24), num_classes=3, max_per_class=2, progress=False
    )
    assert stats.counts["SE_2_1"].tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="unknown SE block"):
        ex.collect_excitations(model, _batches(), num_classes=3, blocks=["SE_9_9"], progress=False)
    with pytest.raises(ValueError, match="no SqueezeExcitation"):
        ex.collect_excitations(senet.create_model("cifar_resnet20"), _batches(), 3, progress=False)


def test_plots_are_png(tmp_path) -> None:
    model = senet.create_model("cifar_se_resnet20", num_classes=3)
    stats = ex.collect_excitations(
        model, _batches(), num_classes=3, classes=["a", "b", "c"], progress=False
    )
    blocks = ex.default_blocks(stats.blocks)
    paths = [
        plots.plot_class_means(
            stats, tmp_path / "fig6.png", blocks, classes=["a", "c"], n_channels=20
        ),
        plots.plot_class_spread(stats, tmp_path / "fig7.png", blocks, "b", channel_mode="uniform"),
        plots.plot_specificity(stats, tmp_path / "spec.png"),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="unknown class"):
        plots.plot_class_spread(stats, tmp_path / "x.png", blocks, "zebra")


def test_add_se_models_are_analysed_too() -> None:
    torchvision = pytest.importorskip("torchvision")
    from senet.models.retrofit import add_se

    torch.manual_seed(0)
    model = add_se(
        torchvision.models.resnet18(num_classes=3), reduction=16, mode="3x3", gate="tanh"
    )
    names = [b.name for b in ex.find_se_blocks(model)]
    assert names == ["SE_2_1", "SE_2_2", "SE_3_1", "SE_3_2", "SE_4_1", "SE_4_2", "SE_5_1", "SE_5_2"]
    expected = _set_gates(model, lambda c: torch.linspace(-1.0, 1.0, c))
    stats = ex.collect_excitations(model, _batches(n=6, bs=3), num_classes=3, progress=False)
    for name, b in expected.items():
        np.testing.assert_allclose(stats.class_mean(name)[1], torch.tanh(b).numpy(), atol=1e-6)


def test_channels_are_sampled_uniformly_by_default() -> None:
    """The paper plots 50 uniformly sampled channels: evenly spaced by default, deterministic."""
    ch = plots.channel_indices(2048, 50)
    assert len(ch) == 50 and ch[0] == 0 and ch[-1] == 2047
    assert np.all(np.abs(np.diff(ch) - 2047 / 49) <= 1)  # even spacing, up to rounding
    rnd = plots.channel_indices(2048, 50, "random", seed=3)
    assert len(set(rnd.tolist())) == 50 and np.all(np.diff(rnd) > 0)
    assert np.array_equal(rnd, plots.channel_indices(2048, 50, "random", seed=3))
    assert not np.array_equal(rnd, plots.channel_indices(2048, 50, "random", seed=4))
    assert plots.channel_indices(2048, 50, "first").tolist() == list(range(50))
    assert plots.channel_indices(16, 50).tolist() == list(range(16))  # narrow blocks: all
    with pytest.raises(ValueError, match="choose uniform, random or first"):
        plots.channel_indices(64, 8, "last")


def test_paper_class_preset() -> None:
    """goldfish, pug, plane (airliner), cliff: found by wnid, by name or by 1,000-class index."""
    names = [f"class{i}" for i in range(1000)]  # names as torchvision's category list has them
    for _, i, name in ex.PAPER_CLASSES:
        names[i] = name
    assert [n for _, _, n in ex.PAPER_CLASSES] == ["goldfish", "pug", "airliner", "cliff"]
    wnids = ["n01440764", "n01443537", "n02110958", "n02690373", "n09246464", "n15075141"]
    assert ex.choose_classes(wnids) == wnids[1:5]  # auto: the paper's where they exist
    assert ex.choose_classes(list(names), preset="paper") == [
        "goldfish",
        "pug",
        "airliner",
        "cliff",
    ]
    by_index = [str(i) for i in range(1000)]
    assert ex.choose_classes(by_index) == ["1", "254", "404", "972"]
    cifar = ["airplane", "automobile", "bird", "cat", "deer"]
    assert ex.choose_classes(cifar) == cifar[:4]  # auto falls back to the first four
    assert ex.choose_classes(cifar, ["cat", "0"]) == ["cat", "airplane"]
    with pytest.raises(ValueError, match=r"the paper's classes .* are ImageNet classes"):
        ex.choose_classes(cifar, preset="paper")
    with pytest.raises(ValueError, match="unknown class 'zebra'"):
        ex.choose_classes(cifar, ["zebra"])


@pytest.mark.slow
def test_preset_agrees_with_timms_imagenet_class_list() -> None:
    """wnid, index and name of each paper class as timm's ImageNetInfo lists them (torchvision's
    category list has the same names at the same indices)."""
    timm_data = pytest.importorskip("timm.data")
    info = timm_data.ImageNetInfo()
    wnids = info.label_names()
    for wnid, index, name in ex.PAPER_CLASSES:
        assert wnids[index] == wnid
        assert info.index_to_description(index).split(",")[0] == name


def test_streaming_from_files_equals_the_in_memory_path(tiny_imagefolder) -> None:
    """Images read from disk batch by batch give the statistics the decoded tensors give."""
    from senet.data import FolderDataset, ImageTensorSet, build_dataset, build_loader

    torch.manual_seed(0)
    model = senet.create_model("cifar_se_resnet20", num_classes=3)
    norm = {"mean": [0.5] * 3, "std": [0.25] * 3}
    files = build_dataset("imagefolder", tiny_imagefolder, "val", in_memory=False)
    memory = build_dataset("imagefolder", tiny_imagefolder, "val", in_memory=True)
    assert isinstance(files, FolderDataset) and isinstance(memory, ImageTensorSet)
    streamed = build_loader(files, 5, input_size=16, eval_resize=16, workers=0, **norm)
    decoded = build_loader(memory, 5, **norm)
    a = ex.collect_excitations(model, streamed, 3, progress=False)
    b = ex.collect_excitations(model, decoded, 3, progress=False)
    for name in a.names:
        assert a.counts[name].tolist() == b.counts[name].tolist() == [8, 8, 8]
        np.testing.assert_allclose(a.class_mean(name), b.class_mean(name), atol=1e-5)
        np.testing.assert_allclose(a.class_std(name), b.class_std(name), atol=1e-5)
