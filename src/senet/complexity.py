"""Parameters and multiply-accumulates, counted the way the paper reports them (Sec. 4, Table 2).

The paper's "GFLOPs" are multiply-accumulates of the convolutions and FC layers. For SE networks
it also counts the squeeze's pooling and the excitation's scaling as one operation per element:
that is why SE-ResNet-50 is 3.87 vs 3.86 G although its FC layers add only 0.0025 G. ``count``
reports the two parts separately and their sum:

- ``macs``: convolution + FC multiply-accumulates (SE FC layers included);
- ``se_elementwise``: one op per element for each SE block's pooling and scaling;
- ``total``: their sum, the number to compare with the paper's SE column.

The paper's extra-parameter formula for an SENet is (2/r) · Σ_s N_s · C_s² (S stages, N_s blocks of
C_s output channels); ``paper_extra_params`` evaluates it from a model's own SE blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn

from senet.layers import native
from senet.layers.se import SqueezeExcitation
from senet.models.registry import SE_OPTIONS, build_model, get_entry


@dataclass(frozen=True)
class Complexity:
    """Per-image counts of one network at one input size."""

    params: int
    macs: int
    se_elementwise: int
    input_size: tuple[int, int]

    @property
    def total(self) -> int:
        return self.macs + self.se_elementwise

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def gtotal(self) -> float:
        return self.total / 1e9

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "total": self.total}


def count_params(
    model: nn.Module, trainable_only: bool = False, bn_statistics: bool = False
) -> int:
    """Parameters of ``model``; ``bn_statistics=True`` adds the BN running means and variances.

    Caffe stores those statistics as layer blobs beside the weights, and the paper's Sec. 6 tables
    (Tables 10, 13, 15, 16) appear to count them: with them, and without the SE FC biases the
    ablations drop, their parameter column is reproduced to the printed digit (docs/models.md).
    """
    n = sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
    if bn_statistics:
        n += sum(
            m.running_mean.numel() + m.running_var.numel()
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
        )
    return n


def _size(input_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(input_size, int):
        return (input_size, input_size)
    h, w = input_size
    return (int(h), int(w))


@contextmanager
def _recording_se_inputs(
    record: Callable[[SqueezeExcitation, torch.Tensor], None],
) -> Iterator[None]:
    """Call ``record(se, x)`` for every SE gate computed (``SqueezeExcitation.excitation`` is the
    one entry point every block uses, whether it calls the module or fuses its scale, except the
    native C++ node, which ``count`` switches off)."""
    original = SqueezeExcitation.excitation

    def recording(self: SqueezeExcitation, x: torch.Tensor) -> torch.Tensor:
        record(self, x)
        return original(self, x)

    SqueezeExcitation.excitation = recording  # type: ignore[method-assign]
    try:
        yield
    finally:
        SqueezeExcitation.excitation = original  # type: ignore[method-assign]


def count(
    model: nn.Module, input_size: int | tuple[int, int] = 224, in_chans: int | None = None
) -> Complexity:
    """Count params, conv/FC MACs and SE element-wise ops for one ``in_chans×H×W`` image."""
    h, w = _size(input_size)
    if in_chans is None:
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        in_chans = first.in_channels if first is not None else 3
    se_modules = [m for m in model.modules() if isinstance(m, SqueezeExcitation)]
    inside_se = {id(sub) for se in se_modules for sub in se.modules()}
    totals = {"macs": 0, "elementwise": 0}

    def conv_hook(m: nn.Conv2d, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        kh, kw = m.kernel_size
        totals["macs"] += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        totals["macs"] += (out.numel() // out.shape[0]) * m.in_features

    def se_record(m: SqueezeExcitation, x: torch.Tensor) -> None:
        x = x[0]  # one image: C×H×W
        spatial = x.shape[1] * x.shape[2]
        fc = 2 * m.channels * m.hidden
        if m.squeeze == "none":  # NoSqueeze: the FCs are 1×1 convolutions on the full map
            totals["macs"] += fc * spatial
            totals["elementwise"] += x.numel()  # scaling only
        else:
            totals["macs"] += fc
            totals["elementwise"] += 2 * x.numel()  # pooling + scaling

    handles = []
    for m in model.modules():
        if id(m) in inside_se:
            continue
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), native.disabled(), _recording_se_inputs(se_record):
            param = next(model.parameters(), None)
            device = param.device if param is not None else torch.device("cpu")
            model(torch.zeros(1, in_chans, h, w, device=device))
    finally:
        for hd in handles:
            hd.remove()
        model.train(was_training)
    return Complexity(count_params(model), totals["macs"], totals["elementwise"], (h, w))


def paper_extra_params(model: nn.Module) -> int:
    """The paper's formula (2/r)·Σ N_s·C_s², from the model's own SE blocks (weights only)."""
    return sum(
        round(2 * m.channels**2 / m.reduction)
        for m in model.modules()
        if isinstance(m, SqueezeExcitation)
    )


def se_params(model: nn.Module) -> int:
    """Parameters of the SE blocks as built (weights and, when enabled, biases)."""
    return sum(
        p.numel()
        for m in model.modules()
        if isinstance(m, SqueezeExcitation)
        for p in m.parameters()
    )


def describe(name: str, input_size: int | None = None, **options: object) -> dict[str, object]:
    """Complexity of a registered network beside the paper's values (``senet complexity``)."""
    entry = get_entry(name)
    res = entry.input_size if input_size is None else input_size
    if isinstance(res, bool) or not isinstance(res, int) or res < entry.min_input_size:
        raise ValueError(
            f"input size {res!r} is too small for {name}: its smallest input is "
            f"{entry.min_input_size} (its own size is {entry.input_size}); use --res ≥ {entry.min_input_size}"
        )
    model = build_model(name, **options)
    c = count(model, res)
    row: dict[str, object] = {
        "model": name,
        "input_size": res,
        "params": c.params,
        "gmacs_conv_fc": round(c.gmacs, 4),
        "gops_se_elementwise": round(c.se_elementwise / 1e9, 4),
        "gmacs_total": round(c.gtotal, 4),
        "se_params": se_params(model),
        "paper_formula_extra_params": paper_extra_params(model),
        "paper_gflops": entry.paper.gmacs if res == entry.input_size else None,
        "paper_params_m": entry.paper.params_m,
        "baseline": entry.baseline,
    }
    if entry.baseline:
        base = count(build_model(entry.baseline, **_shared_options(options)), res)
        row["extra_params_vs_baseline"] = c.params - base.params
        row["extra_params_pct"] = round(100 * (c.params - base.params) / base.params, 2)
    return row


def _shared_options(options: dict[str, object]) -> dict[str, object]:
    """The options an SE network shares with its plain baseline (drop the SE-only ones)."""
    return {k: v for k, v in options.items() if k not in SE_OPTIONS}
