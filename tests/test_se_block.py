"""The SE block (Sec. 3): arithmetic, variants, width rule and errors."""

import pytest
import torch
import torch.nn.functional as F

from senet.layers import SEConfig, SqueezeExcitation, se_hidden_channels


def manual_se(x, se):
    """The paper's equations written out independently of the module's code."""
    w1, w2 = se.fc1.weight.flatten(1), se.fc2.weight.flatten(1)
    b1 = se.fc1.bias if se.fc1.bias is not None else torch.zeros(w1.shape[0])
    b2 = se.fc2.bias if se.fc2.bias is not None else torch.zeros(w2.shape[0])
    if se.squeeze == "none":
        h = torch.einsum("oc,nchw->nohw", w1, x) + b1[:, None, None]
        t = torch.einsum("oc,nchw->nohw", w2, F.relu(h)) + b2[:, None, None]
    else:
        z = x.mean((2, 3)) if se.squeeze == "avg" else x.amax((2, 3))
        t = (F.relu(z @ w1.T + b1) @ w2.T + b2)[:, :, None, None]
    s = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": F.relu}[se.gate](t)
    return x * s, s


@pytest.mark.parametrize("squeeze", ["avg", "max", "none"])
@pytest.mark.parametrize("gate", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_block_matches_the_equations(squeeze, gate, bias):
    torch.manual_seed(0)
    se = SqueezeExcitation(32, reduction=4, squeeze=squeeze, gate=gate, bias=bias)
    x = torch.randn(3, 32, 5, 7)
    expected, s_expected = manual_se(x, se)
    torch.testing.assert_close(se(x), expected, rtol=1e-5, atol=1e-6)
    s = se.excitation(x)
    torch.testing.assert_close(s, s_expected, rtol=1e-5, atol=1e-6)
    assert s.shape == ((3, 32, 5, 7) if squeeze == "none" else (3, 32, 1, 1))


def test_sigmoid_gate_lies_in_open_unit_interval_and_rescales_channelwise():
    torch.manual_seed(1)
    se = SqueezeExcitation(64, reduction=16)
    x = torch.randn(4, 64, 6, 6)
    s = se.excitation(x)
    assert ((s > 0) & (s < 1)).all()
    out = se(x)
    ratio = out / x
    # one scale per (image, channel), constant over H×W
    torch.testing.assert_close(ratio, s.expand_as(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "channels,r,bias", [(64, 16, True), (256, 4, False), (2048, 32, True), (48, 2, False)]
)
def test_parameter_count_follows_the_formula(channels, r, bias):
    se = SqueezeExcitation(channels, reduction=r, bias=bias)
    hidden = channels // r
    expected = 2 * channels * hidden + ((hidden + channels) if bias else 0)
    assert sum(p.numel() for p in se.parameters()) == expected
    assert se.hidden == hidden


def test_nosqueeze_keeps_spatial_size_and_has_same_params_as_se():
    se = SqueezeExcitation(32, 8, squeeze="none")
    plain = SqueezeExcitation(32, 8)
    x = torch.randn(2, 32, 9, 11)
    assert se(x).shape == x.shape
    assert se.excitation(x).shape == x.shape
    assert sum(p.numel() for p in se.parameters()) == sum(p.numel() for p in plain.parameters())


def test_width_rule_exact_floor_by_default_and_timm_rounding_as_option():
    assert se_hidden_channels(1056, 16) == 66  # SE-BN-Inception's released width
    assert se_hidden_channels(64, 16) == 4  # paper: C/r
    assert se_hidden_channels(64, 16, divisor=8) == 8  # timm's make_divisible(C/16, 8)
    assert se_hidden_channels(256, 16, divisor=8) == 16
    assert se_hidden_channels(16, 32, min_channels=1) == 1


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"reduction": 0.5}, "reduction=0.5 must be ≥ 1"),
        ({"reduction": 32}, "reduction=32 leaves no hidden channel for 16 input channels"),
        ({"squeeze": "median"}, "squeeze='median' is not supported; choose one of avg, max, none"),
        ({"gate": "softmax"}, "gate='softmax' is not supported; choose one of sigmoid, tanh, relu"),
        ({"divisor": 0}, "divisor=0 must be ≥ 1"),
        ({"min_channels": 0}, "min_channels=0 must be ≥ 1"),
    ],
)
def test_bad_options_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SqueezeExcitation(16, **kwargs)


def test_config_validates_integration_and_bias():
    with pytest.raises(
        ValueError, match="integration='after' is not supported; choose one of standard, pre"
    ):
        SEConfig(integration="after")
    with pytest.raises(ValueError, match="se_bias='yes' must be True or False"):
        SEConfig(bias="yes")
    assert SEConfig(reduction=8).hidden(64) == 8


def test_gate_out_hook_sees_the_excitation():
    se = SqueezeExcitation(16, 4)
    seen = []
    se.gate_out.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.randn(2, 16, 3, 3)
    se(x)
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], se.excitation(x))


def test_one_option_list_from_public_names_to_fields():
    """The public SE option names are defined once (SEConfig.OPTIONS) and mapped to the fields."""
    cfg = SEConfig.from_options(reduction=8, se_bias=False, se_divisor=8, integration="pre")
    assert (cfg.reduction, cfg.bias, cfg.divisor, cfg.integration) == (8, False, 8, "pre")
    assert SEConfig.from_options() == SEConfig()
    defaults = SEConfig.defaults()
    assert list(defaults) == list(SEConfig.OPTIONS)
    assert defaults["reduction"] == 16 and defaults["se_bias"] is True
    with pytest.raises(ValueError, match="unknown SE option 'bias'; did you mean se_bias"):
        SEConfig.from_options(bias=False)
    with pytest.raises(
        ValueError, match="unknown SqueezeExcitation option 'se_bias'; did you mean bias"
    ):
        SqueezeExcitation(16, se_bias=False)
    with pytest.raises(ValueError, match="reduction='8' must be a number"):
        SEConfig.from_options(reduction="8")
    with pytest.raises(ValueError, match="se_divisor=None must be an integer"):
        SEConfig(divisor=None)
    # a block built from a config is the block built from the same fields
    a = SqueezeExcitation.from_config(64, cfg)
    b = SqueezeExcitation(64, 8, bias=False, divisor=8)
    assert (a.hidden, a.fc1.bias) == (b.hidden, None) == (8, None)
