"""Convolutions whose weights are reordered for oneDNN once, not on every call (CPU inference).

ATen's CPU convolution passes plain OIHW weights to oneDNN, which reorders them into its own
blocked layout on each call. ``torch.compile``'s freezing pass avoids that by packing the weights
once (``mkldnn._reorder_convolution_weight``) and calling ``mkldnn._convolution_pointwise``; that
is most of why compiled models ran faster here (issue 7). ``prepack_convolutions`` does the same
in eager mode, without a compiler: every eligible ``nn.Conv2d`` becomes a ``PackedConv2d``.
Measured at batch 1 on SE-ResNet-50, channels-last (AMD EPYC, 2 threads): float32 70.8 → 50.7 ms,
bf16 37.5 → 28.9 ms (benchmarks/README.md).

A ``PackedConv2d`` keeps its dense ``weight``/``bias`` (same state-dict keys, used by the early
squeeze and by every fallback) and uses the packed copy only where it computes the same thing:
CPU, a 4-D input of the weight's dtype (float32 or bfloat16), no autocast (or autocast to that
dtype), no gradient wanted
for the weight, no tracing or compiling. Anything else runs the ordinary ``F.conv2d``. If the
weight is replaced or changed in place (``.to()``, ``load_state_dict``), the next call repacks.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Proxy

from senet.layers import ops
from senet.layers.module_utils import replace_submodule, run_hooked
from senet.layers.se import SqueezeExcitation

#: weight dtypes that can be packed (bf16 only where oneDNN supports it on this CPU)
PACK_DTYPES = (torch.float32, torch.bfloat16)


def prepack_available(dtype: torch.dtype = torch.float32) -> bool:
    """Whether this PyTorch build and CPU can run packed oneDNN convolutions in ``dtype``."""
    if dtype not in PACK_DTYPES or not torch.backends.mkldnn.is_available():
        return False
    mkldnn = torch.ops.mkldnn
    if not (
        hasattr(mkldnn, "_convolution_pointwise") and hasattr(mkldnn, "_reorder_convolution_weight")
    ):
        return False
    if dtype == torch.bfloat16:
        return bool(mkldnn._is_mkldnn_bf16_supported())
    return True


def _autocast_dtype() -> torch.dtype:
    # under CPU autocast a convolution whose input and weight already have autocast's dtype is
    # computed as it is: the packed kernel computes the same; float32 ones would be cast first
    return torch.get_autocast_dtype("cpu")


def _stamp(t: torch.Tensor) -> tuple:
    # tensors made under inference_mode have no version counter (and cannot be changed in place
    # outside it): their storage and dtype identify them
    return (t.data_ptr(), t.dtype, None if t.is_inference() else t._version)


def _packable(conv: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and conv.weight.device.type == "cpu"
        and prepack_available(conv.weight.dtype)
    )


class PackedConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that also holds its weight packed for oneDNN (see the module docstring)."""

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, input_size: Sequence[int]) -> PackedConv2d:
        """Wrap ``conv`` (sharing its parameters), packing for inputs of ``input_size`` (N, C, H, W)."""
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
            device="meta",
        )
        new.weight, new.bias = conv.weight, conv.bias
        new.train(conv.training)
        new.input_size = [int(s) for s in input_size]
        new._packed = None
        new._stamp = None
        return new

    def _weight_stamp(self) -> tuple:
        return (_stamp(self.weight), None if self.bias is None else _stamp(self.bias))

    def _pack(self) -> None:
        w = self.weight.detach()
        self._packed = torch.ops.mkldnn._reorder_convolution_weight(
            w,
            list(self.padding),
            list(self.stride),
            list(self.dilation),
            self.groups,
            self.input_size,
        )
        self._stamp = self._weight_stamp()

    def _can_use_packed(self, x: torch.Tensor) -> bool:
        w = self.weight
        return (
            not isinstance(x, Proxy)
            and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing()
            and x.dim() == 4
            and x.device.type == "cpu"
            and w.device.type == "cpu"
            and x.dtype == w.dtype
            and (self.bias is None or self.bias.dtype == w.dtype)
            and w.dtype in PACK_DTYPES
            and not (torch.is_grad_enabled() and (w.requires_grad or x.requires_grad))
            and (not torch.is_autocast_enabled("cpu") or w.dtype == _autocast_dtype())
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._can_use_packed(x):
            return F.conv2d(
                x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
            )
        if self._packed is None or self._stamp != self._weight_stamp():
            self._pack()
        bias = None if self.bias is None else self.bias.detach()
        return torch.ops.mkldnn._convolution_pointwise(
            x,
            self._packed,
            bias,
            list(self.padding),
            list(self.stride),
            list(self.dilation),
            self.groups,
            "none",
            [],
            "",
        )

    def __getstate__(self) -> dict:
        # the packed weight is an opaque oneDNN tensor (no storage to copy or pickle): copies and
        # unpickled modules repack on their first call (a copy of __dict__: object.__getstate__
        # is Python 3.11+)
        return {**self.__dict__, "_packed": None, "_stamp": None}

    def extra_repr(self) -> str:
        return super().extra_repr() + ", packed=oneDNN"


def _matrix_product_fcs(model: nn.Module) -> set[int]:
    """The SE blocks' FC layers that the fast path runs as matrix products on the squeezed
    descriptor (average/max squeeze), never as convolutions. The example pass cannot find them
    out: a hook on an FC layer makes its block call it as a module (``fast_ops.fc_hooked``)."""
    if not ops.fast_path_enabled():
        return set()
    return {
        id(fc)
        for se in model.modules()
        if isinstance(se, SqueezeExcitation) and se.squeeze != "none"
        for fc in (se.fc1, se.fc2)
    }


def prepack_convolutions(model: nn.Module, example: torch.Tensor) -> int:
    """Replace every packable ``nn.Conv2d`` of ``model`` by a ``PackedConv2d``, in place.

    Packable: CPU weights in float32 (or bfloat16 where oneDNN supports it here), zero padding
    given as numbers, and not an SE block's FC layer that the fast path runs as a matrix product.
    ``example`` is one input batch, run once (no grad) to learn each convolution's input shape,
    which oneDNN uses to choose the packed layout (other shapes still work). Returns how many convolutions were packed; 0 where oneDNN is unavailable. A convolution
    whose weight oneDNN refuses to pack stays a plain ``nn.Conv2d`` (with a warning).
    """
    sizes: dict[str, list[int]] = {}
    handles = []
    products = _matrix_product_fcs(model)
    for name, m in model.named_modules():
        if _packable(m) and id(m) not in products:

            def record(_m: nn.Module, args: tuple, name: str = name) -> None:
                sizes.setdefault(name, list(args[0].shape))

            handles.append(m.register_forward_pre_hook(record))
    if not handles:
        return 0
    run_hooked(model, example, handles)
    count = 0
    for name, size in sizes.items():
        packed = PackedConv2d.from_conv(model.get_submodule(name), size)
        try:
            packed._pack()
        except RuntimeError as err:  # a oneDNN build without this configuration: leave it plain
            warnings.warn(f"prepack_convolutions: {name} left unpacked ({err})", stacklevel=2)
            continue
        replace_submodule(model, name, packed)
        count += 1
    return count
