"""Export a model to ONNX or TorchScript with a dynamic batch dimension, checked against PyTorch.

Each export is verified before it is kept: the exported file runs on a batch of a different size
from the one it was traced with (proving the batch dimension is dynamic) and its outputs must match
PyTorch's within ``atol`` (1e-4 by default). Files are written atomically.

Formats: ``onnx`` (PyTorch's TorchScript-based exporter, which needs no ``onnxscript``; checked
with onnxruntime), ``torchscript`` (``torch.jit.trace``; deprecated upstream since PyTorch 2.10 but
still the format most C++/mobile runtimes load) and ``export`` (``torch.export``'s ``.pt2``, the
upstream successor, with a symbolic batch dimension).
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from senet.utils.io import atomic_path, atomic_write

Format = Literal["onnx", "torchscript", "export"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "export")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "export": ".pt2"}


@dataclass
class ExportReport:
    """Where the export went and how closely it reproduces PyTorch."""

    path: Path
    format: str
    max_abs_diff: float | None  # None when not checked
    check_batch: int


def _check_diff(ref: torch.Tensor, out: torch.Tensor, atol: float, what: str) -> float:
    diff = float((ref - out).abs().max())
    if not diff <= atol:
        raise RuntimeError(
            f"{what} output differs from PyTorch by {diff:.3g} (> {atol}); the export is wrong"
        )
    return diff


def _ignore_shape_branch_warnings() -> None:
    """The SE kernels branch on tensor shapes only to pick between numerically equal kernels, so
    the tracer's "might not generalize" warnings about those branches are noise."""
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)


def _example(input_size: int, batch: int, seed: int = 0, in_chans: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, in_chans, input_size, input_size, generator=g)


def _first_line(err: BaseException) -> str:
    """An exporter error in one line (PyTorch appends the whole TorchScript graph)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: int = 224,
    opset: int = 17,
    check: bool = True,
    atol: float = 1e-4,
    metadata: dict[str, Any] | None = None,
    in_chans: int = 3,
) -> ExportReport:
    """Write ``model`` as ONNX (input ``images`` N×C×H×W, output ``logits``; N dynamic).

    Uses PyTorch's TorchScript-based exporter (no onnxscript needed); ``metadata`` is stored as
    the ONNX ``metadata_props`` entry ``senet`` (JSON), so mean/std/classes travel with the file.
    """
    import onnx

    model = model.eval()
    x = _example(input_size, 1, in_chans=in_chans)
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=".*(legacy TorchScript-based ONNX|Constant folding|feature will be removed).*",
        )
        _ignore_shape_branch_warnings()
        try:
            with torch.no_grad():
                torch.onnx.export(
                    model,
                    (x,),
                    str(tmp),
                    dynamo=False,
                    input_names=["images"],
                    output_names=["logits"],
                    dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                    opset_version=opset,
                )
        except Exception as err:  # the exporter's errors carry the whole graph: keep one line
            raise RuntimeError(
                f"ONNX export at opset {opset} failed ({_first_line(err)}); try the default "
                "--opset 17, or --format export"
            ) from None
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        if metadata:
            entry = proto.metadata_props.add()
            entry.key, entry.value = "senet", json.dumps(metadata, default=str)
            onnx.save(proto, str(tmp))
        diff = _check_onnx(model, tmp, input_size, atol, in_chans) if check else None
    return ExportReport(path, "onnx", diff, 2)


def _check_onnx(
    model: nn.Module, path: Path, input_size: int, atol: float, in_chans: int = 3
) -> float:
    import onnxruntime as ort

    x = _example(input_size, 2, seed=1, in_chans=in_chans)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        ref = model(x)
    return _check_diff(ref, torch.from_numpy(out), atol, "ONNX (onnxruntime)")


def export_torchscript(
    model: nn.Module,
    path: str | Path,
    input_size: int = 224,
    check: bool = True,
    atol: float = 1e-4,
    metadata: dict[str, Any] | None = None,
    in_chans: int = 3,
) -> ExportReport:
    """Write ``model`` as a traced TorchScript module (``torch.jit.load``-able, any batch size).

    ``metadata`` is stored in the archive as ``extra/senet.json``.
    """
    model = model.eval()
    x = _example(input_size, 1, in_chans=in_chans)
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", category=FutureWarning, message=".*torch.jit.*deprecated.*"
        )
        _ignore_shape_branch_warnings()
        try:
            with torch.no_grad():
                traced = torch.jit.trace(model, (x,), check_trace=False)
        except Exception as err:
            raise RuntimeError(
                f"TorchScript tracing failed ({_first_line(err)}); try --format onnx"
            ) from None
        extra = {"senet.json": json.dumps(metadata or {}, default=str)}
        torch.jit.save(traced, str(tmp), _extra_files=extra)
        diff = None
        if check:
            loaded = torch.jit.load(str(tmp), map_location="cpu")
            x2 = _example(input_size, 2, seed=1, in_chans=in_chans)
            with torch.no_grad():
                diff = _check_diff(model(x2), loaded(x2), atol, "TorchScript")
    return ExportReport(path, "torchscript", diff, 2)


def export_program(
    model: nn.Module,
    path: str | Path,
    input_size: int = 224,
    check: bool = True,
    atol: float = 1e-4,
    metadata: dict[str, Any] | None = None,
    in_chans: int = 3,
) -> ExportReport:
    """Write ``model`` as a ``torch.export`` program (``torch.export.load(path).module()``).

    The batch dimension is symbolic (``Dim("batch")``); ``metadata`` is stored as ``extra/senet.json``.
    """
    from torch.export import Dim

    model = model.eval()
    x = _example(input_size, 2, in_chans=in_chans)  # batch 2: size-1 dimensions get specialised
    path = Path(path)
    try:
        with torch.no_grad():
            program = torch.export.export(model, (x,), dynamic_shapes=({0: Dim("batch")},))
    except Exception as err:
        raise RuntimeError(f"torch.export failed ({_first_line(err)}); try --format onnx") from None
    buf = io.BytesIO()  # torch.export insists on a .pt2 name or a buffer; the write stays atomic
    torch.export.save(
        program, buf, extra_files={"senet.json": json.dumps(metadata or {}, default=str)}
    )
    data = buf.getvalue()
    diff = None
    if check:
        loaded = torch.export.load(io.BytesIO(data)).module()
        x3 = _example(input_size, 3, seed=1, in_chans=in_chans)
        with torch.no_grad():
            diff = _check_diff(model(x3), loaded(x3), atol, "torch.export")
    atomic_write(path, lambda p: p.write_bytes(data))
    return ExportReport(path, "export", diff, 3)


def export_model(
    model: nn.Module, path: str | Path, fmt: str = "onnx", **kwargs: Any
) -> ExportReport:
    """Export ``model`` in ``fmt`` (``onnx``, ``torchscript`` or ``export``).

    ``kwargs``: ``input_size``, ``in_chans`` (the weights' channel count), ``check``, ``atol``,
    ``metadata`` and, for ONNX, ``opset``.
    """
    size = kwargs.get("input_size", 224)
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"input size {size!r} must be a positive integer (e.g. 224)")
    if fmt == "onnx":
        return export_onnx(model, path, **kwargs)
    if fmt == "torchscript":
        return export_torchscript(model, path, **kwargs)
    if fmt == "export":
        return export_program(model, path, **kwargs)
    raise ValueError(f"format {fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
