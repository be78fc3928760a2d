"""Every registered network: builds, runs forward/backward, exposes the uniform interface."""

import pytest
import torch

import senet
from senet.models.registry import get_entry

ALL = senet.list_models()
# big networks (>50M params or slow at any size) run in the slow suite
HEAVY = {
    "senet154",
    "senet154_plain",
    "vgg16_bn",
    "se_vgg16_bn",
    "inception_resnet_v2",
    "se_inception_resnet_v2",
    "cifar_shakeshake26_2x96d",  # 3.8 GMACs per 32×32 image; test_shakeshake.py runs a small one
    "cifar_se_shakeshake26_2x96d",
}


def small_input(name):
    entry = get_entry(name)
    size = entry.input_size if entry.input_size <= 64 else max(64, entry.min_input_size)
    return torch.randn(2, 3, size, size)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in ALL]
)
def test_forward_backward_interface(name):
    torch.manual_seed(0)
    model = senet.create_model(name, num_classes=7)
    x = small_input(name)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    no_grad = [
        n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
    ]
    assert not no_grad, f"parameters without a finite gradient: {no_grad[:5]}"
    # forward_features + forward_head == forward; reset_classifier changes the head only
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        torch.testing.assert_close(model.forward_head(feats), model(x))
        # pre-logits feed the classifier (= num_features, except VGG's 4096-wide hidden FC head)
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (2, model.get_classifier().in_features)
        assert feats.shape[1] == model.num_features
    model.reset_classifier(3)
    assert model.get_classifier().out_features == 3
    assert model(x).shape == (2, 3)
    assert model.feature_info[-1]["num_chs"] == model.num_features


def test_list_models_and_create_model_agree():
    assert len(ALL) == len(set(ALL)) >= 30
    for name in ALL:
        entry = get_entry(name)
        assert entry.name == name
        if entry.baseline:
            assert entry.baseline in ALL and not get_entry(entry.baseline).has_se
    assert senet.list_models("se_resnet*") == [
        "se_resnet101",
        "se_resnet152",
        "se_resnet18",
        "se_resnet34",
        "se_resnet50",
    ]
    assert set(senet.list_models(se=True)).isdisjoint(senet.list_models(se=False))


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 'se_resnet5'; did you mean se_resnet50"):
        senet.create_model("se_resnet5")


def test_bad_options_are_named():
    with pytest.raises(
        ValueError, match=r"resnet50 is a plain network without SE blocks.*use se_resnet50"
    ):
        senet.create_model("resnet50", reduction=8)
    with pytest.raises(ValueError, match="has no option 'reductoin'; did you mean reduction"):
        senet.create_model("se_resnet50", reductoin=8)
    with pytest.raises(ValueError, match=r"se_stages=\(5,\) names stage\(s\) \[5\]"):
        senet.create_model("se_resnet50", se_stages=(5,))
    with pytest.raises(ValueError, match="layout='keras' is not supported"):
        senet.create_model("resnet50", layout="keras")
    with pytest.raises(ValueError, match="num_classes=-1 must be a positive integer"):
        senet.create_model("resnet18", num_classes=-1)  # 0 is allowed: no classifier
    with pytest.raises(ValueError, match="reduction=32 leaves no hidden channel for 16"):
        senet.create_model("cifar_se_resnet20", reduction=32)


@pytest.mark.parametrize("integration", ["standard", "pre", "post", "identity", "3x3"])
@pytest.mark.parametrize(
    "name", ["se_resnet18", "se_resnet50", "cifar_se_resnet20", "cifar_se_wrn16_8"]
)
def test_integration_modes_place_se_where_the_paper_says(name, integration):
    model = senet.create_model(name, integration=integration)
    block = model.layer2[0]
    se = block.se
    cin = block.conv1.in_channels
    mid = block.conv2.out_channels if integration == "3x3" else None
    expected = {"pre": cin, "3x3": mid}.get(integration, model.feature_info[1]["num_chs"])
    if integration == "3x3" and hasattr(block, "conv3"):
        expected = block.conv2.out_channels
    elif integration == "3x3":
        expected = block.conv1.out_channels
    assert se.channels == expected
    # the SE block really runs (no module that is registered but never called)
    seen = []
    se.gate_out.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    res = get_entry(name).input_size
    model(torch.randn(1, 3, min(res, 64), min(res, 64)))
    assert seen and seen[0][1] == expected


def test_integration_modes_compute_different_functions():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    outs = {}
    for mode in ["standard", "pre", "post", "identity", "3x3"]:
        torch.manual_seed(0)
        outs[mode] = senet.create_model("cifar_se_resnet20", integration=mode).eval()(x)
    modes = list(outs)
    for i, a in enumerate(modes):
        for b in modes[i + 1 :]:
            assert not torch.allclose(outs[a], outs[b]), (a, b)


def test_se_stages_and_layouts():
    m = senet.create_model("se_resnet50", se_stages=(1, 2, 3))
    assert all(b.se is not None for b in m.layer3) and all(b.se is None for b in m.layer4)
    caffe = senet.create_model("se_resnet50")
    tv = senet.create_model("se_resnet50", layout="torchvision")
    assert caffe.layer2[0].conv1.stride == (2, 2) and caffe.layer2[0].conv2.stride == (1, 1)
    assert tv.layer2[0].conv1.stride == (1, 1) and tv.layer2[0].conv2.stride == (2, 2)
    assert caffe.maxpool.ceil_mode and caffe.maxpool.padding == 0 and tv.maxpool.padding == 1
    forced = senet.create_model("se_resnet50", stride_in="3x3")
    assert forced.layer2[0].conv2.stride == (2, 2) and forced.maxpool.ceil_mode
    # ResNeXt and SENet-154 were released with the stride in the 3×3 convolution
    assert senet.create_model("se_resnext50_32x4d").layer2[0].conv2.stride == (2, 2)


def test_senet154_has_the_appendix_modifications():
    m = senet.create_model("senet154")
    assert (
        isinstance(m.conv1, torch.nn.Sequential)
        and len([c for c in m.conv1 if isinstance(c, torch.nn.Conv2d)]) == 3
    )
    b = m.layer1[0]
    assert b.conv1.out_channels * 2 == b.conv2.out_channels == 256  # first 1×1 halved
    assert b.conv2.groups == 64  # 64×4d
    assert m.layer2[0].downsample[0].kernel_size == (3, 3)  # 3×3 stride-2 projection
    assert m.layer1[0].downsample[0].kernel_size == (1, 1)  # stage 1 keeps the 1×1 (release)
    assert m.dropout.p == 0.2


#: SE networks of different classes (each checks se_stages with check_se_stages at construction)
ONE_PER_CLASS = [
    "se_resnet18",
    "se_bn_inception",
    "se_mobilenet_v1",
    "se_shufflenet_v1_g3",
    "se_vgg16_bn",
]


@pytest.mark.parametrize("name", ONE_PER_CLASS)
def test_se_stages_accepts_an_int_a_tuple_or_a_list(name):
    """``se_stages=1`` (``-o se_stages=1``) means (1,); bad forms are one-line errors."""
    from senet.layers.se import SqueezeExcitation

    def se_blocks(**opts):
        with torch.device("meta"):
            m = senet.create_model(name, **opts)
        return sum(isinstance(s, SqueezeExcitation) for s in m.modules())

    assert 0 < se_blocks(se_stages=1) == se_blocks(se_stages=[1])
    with pytest.raises(ValueError, match=r"must be a stage number or a list of them"):
        se_blocks(se_stages="(1,2)")
    with pytest.raises(ValueError, match=r"names stage\(s\) \['\(1', '2\)'\]"):
        se_blocks(se_stages=("(1", "2)"))  # what `-o se_stages=(1,2)` parses to


def test_every_se_network_takes_the_one_se_option_list():
    from senet.layers.se import SEConfig
    from senet.models.registry import NO_INTEGRATION, SE_OPTIONS

    assert (*SEConfig.OPTIONS, "se_stages") == SE_OPTIONS
    for name in senet.list_models():
        entry = get_entry(name)
        se_opts = tuple(o for o in entry.options if o in SE_OPTIONS)
        if not entry.has_se:
            assert se_opts == ()
        elif entry.family in ("resnet", "resnext", "cifar_resnet", "inception_resnet"):
            assert se_opts == SE_OPTIONS, name
        else:  # one SE place per block: no integration option
            assert se_opts == NO_INTEGRATION, name


def test_blocks_take_explicit_arguments_and_refuse_resnext_options_they_cannot_honour():
    from senet.models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck

    for block in (BasicBlock, PreActBasicBlock, PreActBottleneck):
        block(16, 16, groups=1, base_width=64)  # the defaults are accepted
        with pytest.raises(ValueError, match=f"{block.__name__} supports only groups=1"):
            block(16, 16, groups=32, base_width=4)
        with pytest.raises(TypeError, match="stride_in"):
            block(16, 16, stride_in="1x1")  # no longer swallowed by **kwargs
    assert Bottleneck(64, 16, groups=4, base_width=8).conv2.groups == 4


def test_registry_carries_each_networks_train_and_eval_sizes():
    """Sec. 5.1: 224 crops, eval 256 → 224; Inception-ResNet-v2 299, eval 352 → 299; CIFAR 32;
    SENet-154 is also evaluated on 320×320 crops (Table 8)."""

    def sizes(name):
        e = get_entry(name)
        return (e.input_size, e.eval_input_size, e.eval_resize, e.test_input_size)

    assert sizes("se_resnet50") == sizes("resnet50") == (224, 224, 256, None)
    assert sizes("se_bn_inception") == sizes("se_mobilenet_v1") == (224, 224, 256, None)
    assert sizes("se_inception_resnet_v2") == sizes("inception_resnet_v2") == (299, 299, 352, None)
    assert sizes("cifar_se_resnet110") == sizes("cifar_wrn16_8") == (32, 32, 32, None)
    assert sizes("senet154") == (224, 224, 256, 320) and get_entry("senet154").test_resize >= 320
    # (crop, resize) of the default evaluation; another crop keeps the network's ratio
    assert get_entry("se_resnet50").eval_sizes() == (224, 256)
    assert get_entry("se_resnet50").eval_sizes(160) == (160, 183)
    assert get_entry("se_inception_resnet_v2").eval_sizes() == (299, 352)
    assert get_entry("senet154").eval_sizes(test=True) == (320, 366)
    assert get_entry("se_resnet50").eval_sizes(test=True) == (224, 256)  # no alternative size
    assert get_entry("cifar_se_resnet20").eval_sizes(16) == (16, 16)
    for name in ALL:
        e = get_entry(name)
        assert e.min_input_size <= e.input_size and e.eval_input_size <= e.eval_resize
        if e.baseline:  # an SE network is trained and evaluated like its baseline
            assert sizes(name)[:3] == sizes(e.baseline)[:3]
