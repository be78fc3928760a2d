"""SE-guided structured pruning: structural exactness, budgets, persistence (issue 6)."""

from __future__ import annotations

import pytest
import torch

import senet
from senet.analysis import excitations as ex
from senet.analysis import prune as pr


def _data(n: int = 16, k: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.arange(n) % k
    return [(x[i : i + 8], y[i : i + 8]) for i in range(0, n, 8)]


def _trained_like(name: str = "cifar_se_resnet20", **options) -> torch.nn.Module:
    """A model with non-trivial BN statistics and biases (so the checks can fail)."""
    torch.manual_seed(0)
    model = senet.create_model(name, num_classes=4, **options)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "options", "target", "ranking"),
    [
        ("cifar_se_resnet20", {}, "output", "excitation"),
        ("cifar_se_resnet20", {}, "output", "l1"),
        ("cifar_se_resnet20", {"integration": "3x3"}, "inner", "excitation"),
        ("cifar_resnet20", {}, "inner", "l1"),  # plain network: magnitude ranking only
        ("cifar_se_resnet20", {"squeeze": "none"}, "output", "random"),
    ],
)
def test_pruned_equals_unpruned_with_removed_channels_zeroed(
    name, options, target, ranking
) -> None:
    model = _trained_like(name, **options)
    x = torch.randn(3, 3, 8, 8)
    stats = None
    if ranking == "excitation":
        stats = ex.collect_excitations(model, _data(), num_classes=4, progress=False)
    groups = pr.prunable_groups(model, target)
    plan = pr.make_plan(groups, pr.channel_scores(model, groups, ranking, stats), amount=0.5)
    zeroed = pr.zero_removed_channels(_trained_like(name, **options), plan)
    with torch.no_grad():
        before = model(x)
        want = zeroed(x)
        pruned = pr.apply_plan(zeroed, plan)
        got = pruned(x)
    assert not torch.allclose(before, want, atol=1e-3)  # zeroing really changed the function
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for g in groups:
        conv = pruned.get_submodule(g.producer)
        assert conv.out_channels == g.channels - round(0.5 * g.channels)


def test_excitation_ranking_removes_least_excited_channels() -> None:
    model = _trained_like()
    stats = ex.collect_excitations(model, _data(), num_classes=4, progress=False)
    _, plan = pr.prune_model(model, 0.25, "excitation", "output", stats)
    mean = stats.overall_mean("SE_3_2")
    kept = plan["keep"]["layer2.1"]
    removed = sorted(set(range(32)) - set(kept))
    assert len(removed) == 8
    assert mean[removed].max() <= mean[kept].min()


def test_budget_params_and_macs_drop_by_the_cut_channels(tmp_path) -> None:
    base = _trained_like()
    before = pr.complexity(base, 32)
    amount = 0.25
    model, plan = pr.prune_model(_trained_like(), amount, "l1", "output")
    after = pr.complexity(model, 32)
    # exact parameter count of what was cut: conv (C_in·9 each), BN (2 each), SE fc1 col + fc2 row + fc2 bias
    expected = 0
    for path, kept in plan["keep"].items():
        blk = base.get_submodule(path)
        removed = blk.conv2.out_channels - len(kept)
        expected += removed * (blk.conv2.in_channels * 9 + 2 + 2 * blk.se.hidden + 1)
    assert before["params"] - after["params"] == expected
    # MACs of each pruned conv2 fall by exactly the removed fraction
    spatial = {1: 32 * 32, 2: 16 * 16, 3: 8 * 8}
    conv_macs = sum(
        spatial[int(p[5])]
        * base.get_submodule(p).conv2.in_channels
        * 9
        * (base.get_submodule(p).conv2.out_channels - len(k))
        for p, k in plan["keep"].items()
    )
    assert before["macs"] - after["macs"] >= conv_macs
    ratio = sum(len(k) for k in plan["keep"].values()) / sum(
        base.get_submodule(p).conv2.out_channels for p in plan["keep"]
    )
    assert ratio == pytest.approx(1 - amount, abs=0.01)
    # same budget for every ranking
    model2, _ = pr.prune_model(_trained_like(), amount, "random", "output", seed=3)
    assert pr.complexity(model2, 32) == after
    # round trip through safetensors, no pickles
    path = pr.save_pruned(model, tmp_path / "pruned.safetensors")
    assert pr.is_pruned_checkpoint(path)
    back = pr.load_pruned(path).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x))
    assert pr.complexity(back, 32) == after


def test_pruned_model_trains_and_evaluates() -> None:
    model, _ = pr.prune_model(_trained_like(), 0.5, "l1", "output")
    data = _data()
    before = [p.detach().clone() for p in model.parameters()]
    pr.finetune(model, data, epochs=1, lr=0.05, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    res = pr.evaluate(model, data)
    assert res["images"] == 16 and 0 <= res["top1"] <= res["top5"] <= 100


def test_bad_requests_are_explained() -> None:
    model = _trained_like()
    with pytest.raises(ValueError, match="amount"):
        pr.prune_model(model, 1.0, "l1")
    with pytest.raises(ValueError, match="needs excitation statistics"):
        pr.prune_model(model, 0.5, "excitation")
    with pytest.raises(ValueError, match="nothing to prune"):
        pr.prunable_groups(senet.create_model("cifar_resnet20"), "output")
    with pytest.raises(ValueError, match="no recorded SE block"):
        stats = ex.collect_excitations(model, _data(), num_classes=4, progress=False)
        pr.prune_model(model, 0.5, "excitation", "inner", stats)


@pytest.mark.parametrize("metric", ["params", pytest.param("macs", marks=pytest.mark.slow)])
def test_budget_search_hits_the_requested_fraction(metric) -> None:
    model = _trained_like()
    amount, achieved = pr.amount_for_budget(model, 0.2, metric, "output", 16)
    pruned, _ = pr.prune_model(_trained_like(), amount, "l1", "output")
    before, after = pr.complexity(model, 16)[metric], pr.complexity(pruned, 16)[metric]
    assert 1 - after / before == pytest.approx(achieved)
    assert 0.2 <= achieved < 0.23  # whole channels: the first step at or above the request
    with pytest.raises(ValueError, match="at most"):
        pr.amount_for_budget(model, 0.9, metric, "output", 16)


def test_add_se_model_prunes_exactly() -> None:
    torchvision = pytest.importorskip("torchvision")
    from senet.models.retrofit import add_se

    def build() -> torch.nn.Module:
        torch.manual_seed(0)
        m = add_se(torchvision.models.resnet18(num_classes=4), init="default")
        with torch.no_grad():
            for bn in (m for m in m.modules() if isinstance(m, torch.nn.BatchNorm2d)):
                bn.running_var.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.2, 0.2)
        return m.eval()

    model = build()
    groups = pr.prunable_groups(model, "output")
    assert len(groups) == 8
    plan = pr.make_plan(groups, pr.channel_scores(model, groups, "l1"), amount=0.25)
    zeroed = pr.zero_removed_channels(build(), plan)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = zeroed(x)
        got = pr.apply_plan(zeroed, plan)(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("integration", "target"), [("standard", "output"), ("3x3", "inner")])
def test_bottleneck_blocks_prune_exactly(integration, target) -> None:
    from senet.layers.se import SEConfig
    from senet.models.resnet import ResNet, ResNetSpec

    spec = ResNetSpec("bottleneck", (2, 1), widths=(8, 16), stem="cifar", stem_width=16)

    def build() -> torch.nn.Module:
        torch.manual_seed(0)
        m = ResNet(spec, num_classes=4, se=SEConfig(reduction=4, integration=integration))
        with torch.no_grad():
            for bn in (x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)):
                bn.running_var.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.2, 0.2)
        return m.eval()

    model = build()
    stats = ex.collect_excitations(model, _data(), num_classes=4, progress=False)
    groups = pr.prunable_groups(model, target)
    plan = pr.make_plan(groups, pr.channel_scores(model, groups, "excitation", stats), amount=0.5)
    zeroed = pr.zero_removed_channels(build(), plan)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = zeroed(x)
        got = pr.apply_plan(zeroed, plan)(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert sum(p.numel() for p in zeroed.parameters()) < sum(p.numel() for p in model.parameters())


def test_generic_loaders_point_pruned_checkpoints_to_load_pruned(tmp_path):
    """load_model / create_model(checkpoint=) refuse a pruned file with the loader to use."""
    from senet.interop.weights_file import load_model

    model, _ = pr.prune_model(senet.create_model("cifar_se_resnet20"), 0.5, "l1", "output")
    path = pr.save_pruned(model, tmp_path / "pruned.safetensors")
    assert pr.load_pruned(path)(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    for load in (load_model, lambda p: senet.create_model("cifar_se_resnet20", checkpoint=p)):
        with pytest.raises(ValueError, match=r"pruned cifar_se_resnet20 .*load_pruned\(path\)"):
            load(path)
