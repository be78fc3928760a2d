"""SE models under torch.fx: symbolic tracing, torchvision's feature extractor, FX quantization.

Under tracing the SE ops take the reference path (``senet.layers.ops._use_fast``: the traced
tensors are ``torch.fx.Proxy`` objects), so the graph records ordinary nodes — ``mean``, the
``se.fc1``/``se.fc2`` modules, the gate, ``gate_out``, ``mul`` — and computes the same function
as the eager model (float64, to rounding).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch.fx import symbolic_trace

import senet
from _helpers import randomize_bn


def _model(name: str, size: int) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = randomize_bn(senet.create_model(name, num_classes=10)).eval().double()
    return model, torch.randn(2, 3, size, size, dtype=torch.float64)


@pytest.mark.parametrize(
    "name,size",
    [
        ("cifar_se_resnet20", 32),
        pytest.param("se_resnet50", 64, marks=pytest.mark.slow),
        ("se_mobilenet_v1", 64),
        pytest.param("se_bn_inception", 96, marks=pytest.mark.slow),
    ],
)
def test_symbolic_trace_computes_the_same_function(name, size):
    model, x = _model(name, size)
    traced = symbolic_trace(model)
    targets = {str(n.target) for n in traced.graph.nodes if n.op == "call_module"}
    assert any(t.endswith("se.fc1") for t in targets) and any(
        t.endswith("se.gate_out") for t in targets
    )
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x), rtol=1e-10, atol=1e-10)


def test_trace_in_training_mode_gives_the_same_gradients():
    model, x = _model("cifar_se_resnet20", 16)
    model.train()
    traced = symbolic_trace(copy.deepcopy(model))
    for m in (model, traced):
        m.zero_grad(set_to_none=True)
        m(x).square().sum().backward()
    for (name, a), b in zip(model.named_parameters(), traced.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-9, atol=1e-10, msg=name)


def test_create_feature_extractor_matches_forward_features_and_the_gate_hook():
    from torchvision.models.feature_extraction import create_feature_extractor

    model, x = _model("cifar_se_resnet20", 16)
    last = model.feature_info[-1]["module"]
    extractor = create_feature_extractor(
        model, return_nodes={last: "features", "layer1.0.se.gate_out": "gate"}
    )
    seen = []
    model.layer1[0].se.gate_out.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        out = extractor(x)
        want = model.forward_features(x)
    torch.testing.assert_close(out["features"], want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out["gate"], seen[0], rtol=1e-10, atol=1e-10)
    assert out["gate"].shape == (2, 16, 1, 1)


@pytest.mark.slow
def test_fx_quantization_prepares_and_converts_an_se_model():
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.manual_seed(1)
    model = randomize_bn(senet.create_model("cifar_se_resnet20")).eval()
    x = torch.randn(4, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("x86"), (x,))
        observers = [n for n in prepared.graph.nodes if "activation_post_process" in str(n.target)]
        with torch.no_grad():
            observed = prepared(x)  # calibration pass: observers record, values unchanged
            quantized = convert_fx(prepared)
            yq = quantized(x)
            yf = model(x)
    torch.testing.assert_close(observed, yf, rtol=1e-4, atol=1e-4)
    assert len(observers) > 20  # the SE ops (mean, fc1, fc2, mul) are observed too
    assert yq.shape == yf.shape and torch.isfinite(yq).all()
    assert (yq - yf).abs().max() < 0.25 * yf.abs().max()  # int8: coarse, but the same function


@pytest.mark.slow
@pytest.mark.parametrize("name", senet.list_models())
def test_every_registered_model_traces(name: str) -> None:
    """FX tracing covers the whole zoo (VGG's head once sliced its Sequential, which FX refuses)."""
    entry = senet.get_entry(name)
    torch.manual_seed(0)
    model = senet.create_model(name, num_classes=5).eval()
    graph = symbolic_trace(model)
    x = torch.randn(1, 3, entry.min_input_size, entry.min_input_size)
    with torch.no_grad():
        traced, eager = graph(x), model(x)
    # the traced graph runs the reference ops, the eager model the fast path: float32 rounding
    # grows with depth, so the tolerance is relative to the output's scale
    assert (traced - eager).abs().max() <= 1e-4 * eager.abs().max()
