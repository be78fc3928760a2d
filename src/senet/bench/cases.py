"""What a benchmark times: one ``Case`` per (model, task, batch, layout, code path).

A case owns its model, optimiser and inputs and exposes ``step()``: one inference forward or one
training step (forward, backward, SGD update). ``images`` is the number of images a step handles.
Models are named ``se_resnet50`` (senet), ``timm:seresnet50`` (timm) or ``plain:cifar_se_resnet20``
(the plain-loop reference in ``senet.bench.plain_loop``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from senet.bench.plain_loop import PlainCifarResNet
from senet.data.datasets import ImageTensorSet, build_dataset
from senet.data.loaders import TensorBatchLoader
from senet.factory import create_model
from senet.layers import native, ops
from senet.layers.fuse import cast_for_inference, fold_batchnorm, optimize_for_inference

Layout = str  # "nchw" | "cl"
INFER_MODES = ("eager", "fused", "optimized", "cast", "jit", "compile")
AMPS = ("none", "bf16")


def setting_name(amp: str, layout: Layout) -> str:
    """A precision/layout setting as the tables print it: ``fp32 NCHW``, ``bf16 CL``, ..."""
    return f"{'bf16' if amp == 'bf16' else 'fp32'} {'CL' if layout == 'cl' else 'NCHW'}"


def _amp(amp: str) -> contextlib.AbstractContextManager:
    """bf16 autocast (CPU) around a forward, or nothing."""
    if amp not in AMPS:
        raise ValueError(f"amp {amp!r} is not supported here; choose none or bf16")
    return (
        torch.autocast("cpu", dtype=torch.bfloat16) if amp == "bf16" else contextlib.nullcontext()
    )


@dataclass
class Case:
    """One timed configuration; ``fast`` selects senet's SE code path while it runs."""

    label: str
    group: str
    task: str  # "infer" | "train" | "loop"
    model: str
    batch: int
    size: int
    layout: Layout
    path: str  # "fast" | "aten" (fast, native kernels off) | "reference" | "-" (not senet code) | "compile"
    step: Callable[[], None] = field(repr=False)
    images: int = 0
    extra: dict[str, object] = field(default_factory=dict)
    amp: str = "none"  # "none" (float32) | "bf16" (CPU autocast around the forward)

    @property
    def setting(self) -> str:
        return setting_name(self.amp, self.layout)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Run with this case's SE code path selected."""
        if self.path == "reference":
            with ops.reference_path():
                yield
        elif self.path == "aten":  # the fast path without the native kernels
            with ops.fast_path(), native.disabled():
                yield
        else:
            with ops.fast_path():
                yield


def build_model(name: str, num_classes: int | None = None) -> nn.Module:
    """A model from senet's registry, timm (``timm:``) or the plain-loop reference (``plain:``)."""
    if name.startswith("timm:"):
        try:
            import timm
        except ImportError as err:
            raise ValueError(
                "timm models need timm: pip install timm (or drop the timm cases)"
            ) from err
        return timm.create_model(name[5:], pretrained=False, num_classes=num_classes or 1000)
    if name.startswith("plain:"):
        plain = {"cifar_resnet20": False, "cifar_se_resnet20": True}
        if name[6:] not in plain:
            raise ValueError(f"plain-loop reference has {sorted(plain)}; got {name[6:]!r}")
        return PlainCifarResNet(3, plain[name[6:]], num_classes or 10)
    return create_model(name, num_classes=num_classes)


def _fmt(layout: Layout) -> torch.memory_format:
    if layout not in ("nchw", "cl"):
        raise ValueError(f"layout {layout!r} is not supported; choose nchw or cl (channels_last)")
    return torch.channels_last if layout == "cl" else torch.contiguous_format


def infer_case(
    model: str,
    batch: int,
    size: int,
    layout: Layout,
    path: str = "fast",
    mode: str = "eager",
    group: str = "",
    amp: str = "none",
) -> Case:
    """Inference latency: one forward under ``inference_mode`` (and bf16 autocast if ``amp``).

    ``mode``: eager; fused (BN folded); optimized (``optimize_for_inference``: BN folded, the
    squeeze moved before conv3, convolution weights packed for oneDNN); cast (the whole model ``.to(bfloat16)``, input too: what a timm
    user does without autocast; bf16 only); jit (``torch.jit.optimize_for_inference``, for timm);
    compile (``torch.compile`` with Inductor's ``freezing``; compiles on the first, warm-up, call).
    With ``amp="bf16"``, fused and optimized store their weights in bfloat16
    (``optimize_for_inference(dtype=torch.bfloat16)``) instead of leaving the casts to autocast.
    """
    if mode not in INFER_MODES:
        raise ValueError(
            f"inference mode {mode!r} is not supported; choose one of {', '.join(INFER_MODES)}"
        )
    fmt = _fmt(layout)
    _amp(amp)  # refuse a bad value before building anything
    m = build_model(model).eval().to(memory_format=fmt)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    low = torch.bfloat16 if amp == "bf16" else None
    if mode == "fused":
        m = fold_batchnorm(m, example=x[:1])
        if low is not None:
            cast_for_inference(m, low)
    elif mode == "optimized":
        m = optimize_for_inference(m, example=x[:1], dtype=low)
    elif mode == "cast":
        if low is None:
            raise ValueError("inference mode 'cast' is bf16 only (amp='bf16')")
        m, x = m.to(low), x.to(low)
    elif mode == "compile":
        import torch._inductor.config as inductor

        inductor.freezing = True  # fold weights/BN as constants: Inductor's inference setting
        m = torch.compile(m)
    elif mode == "jit":
        with torch.no_grad(), ops.reference_path() if path == "reference" else ops.fast_path():
            m = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(m, x[:1]).eval()))

    def step() -> None:
        with torch.inference_mode(), _amp(amp):
            m(x)

    tag = "" if mode == "eager" else f" [{mode}]"
    return Case(
        f"{model}{tag} ({path})",
        group,
        "infer",
        model,
        batch,
        size,
        layout,
        path,
        step,
        batch,
        {"mode": mode},
        amp,
    )


def _sgd(m: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)


def train_case(
    model: str,
    batch: int,
    size: int,
    layout: Layout,
    path: str = "fast",
    group: str = "",
    num_classes: int = 1000,
    amp: str = "none",
) -> Case:
    """Training throughput on a fixed synthetic batch: forward (under bf16 autocast if ``amp``),
    cross-entropy, backward, SGD step."""
    fmt = _fmt(layout)
    _amp(amp)
    m = build_model(model, num_classes).train().to(memory_format=fmt)
    if path == "compile":
        m = torch.compile(m)
    opt = _sgd(m)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).contiguous(memory_format=fmt)
    y = torch.randint(0, num_classes, (batch,), generator=g)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with _amp(amp):
            out = m(x)
        F.cross_entropy(out.float(), y).backward()
        opt.step()

    return Case(
        f"{model} ({path})", group, "train", model, batch, size, layout, path, step, batch, amp=amp
    )


def loop_case(
    model: str,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    batch: int,
    layout: Layout,
    path: str = "fast",
    group: str = "",
    data: str = "",
) -> Case:
    """A full training loop step: next batch from ``batches`` (data cost included), then train."""
    fmt = _fmt(layout)
    m = build_model(model, 10).train().to(memory_format=fmt)
    opt = _sgd(m)

    def step() -> None:
        x, y = next(batches)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(m(x.contiguous(memory_format=fmt)), y).backward()
        opt.step()

    return Case(
        f"{model} + {data} ({path})",
        group,
        "loop",
        model,
        batch,
        32,
        layout,
        path,
        step,
        batch,
        {"data": data},
    )


def load_cifar(data_dir: str | Path | None, subset: int, seed: int = 0):
    """CIFAR-10 training images in memory (``subset``, class-balanced), or generated ones when
    ``data_dir`` is None, as senet's data module holds them (uint8 N×3×32×32)."""
    if data_dir is None:
        g = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (subset, 3, 32, 32), dtype=torch.uint8, generator=g)
        return ImageTensorSet(
            images,
            torch.arange(subset) % 10,
            [str(i) for i in range(10)],
            f"generated ({subset} images)",
        )
    data = build_dataset("imagefolder", data_dir, "train", in_memory=True, subset=subset)
    data.name = f"{data_dir} ({len(data)} images)"
    return data


def project_batches(
    data, batch: int, layout: Layout, seed: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches through senet's in-memory uint8 loader (crop+flip in tensor ops)."""
    mean, std = data.channel_stats()
    loader = TensorBatchLoader(
        data,
        batch,
        train=True,
        augment="crop_flip",
        mean=mean,
        std=std,
        seed=seed,
        channels_last=layout == "cl",
    )
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1
