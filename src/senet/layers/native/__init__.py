"""Optional C++ kernels for the SE block on CPU maps (channels-last and NCHW).

The fast path (``senet.layers.fast_ops``) runs each pass of the SE block on an ATen kernel, from
Python. ``se_kernels.cpp`` fuses passes further than ATen allows (the scale, residual sum and ReLU
in one pass; the ReLU's backward and ``d/ds = Σ_hw g·x`` in one pass; ``d/dx = g·s + dz/HW`` in
one pass; reductions with register-resident accumulators) and runs the whole block, forward and
backward, as one C++ autograd node, without the interpreter between its ATen calls (and, at
batch ≤ 8, with its own loop for the FCs). Measured (docs/performance.md, "Native kernels"):
SE-ResNet-20 ÷ ResNet-20 training time 1.04–1.19 on ATen's kernels, 1.00–1.07 with the node.

The kernels are compiled on first use, for this CPU, with ``torch.utils.cpp_extension``
(a C++ compiler and ``ninja`` are needed: ``pip install 'senet[native]'`` brings ninja), and
cached under ``$SENET_NATIVE_CACHE`` (default ``~/.cache/senet/native``), one build per source,
PyTorch version and CPU. Where a build fails (no compiler, no ninja), a warning says why and the
ATen path is used: results agree within float rounding either way. Off Linux x86-64 they are not
attempted (no warning; ``status()`` and the settings line of ``senet train`` say so).

The library is loaded as a Python module: the two block ops are called through its own entries
(one dispatcher call, as ``torch.ops.senet_native.*`` makes, without ``torch.ops``' argument
matching in Python, whose call path is cold code after each convolution at batch 1), except where
a tensor subclass or a ``TorchFunctionMode`` should see the op.

``SENET_NATIVE`` selects: ``auto`` (default: build or load on first use, fall back with a
warning), ``1`` (required: an error if they cannot be built), ``0`` (never).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import platform
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

_SOURCE = Path(__file__).with_name("se_kernels.cpp")
_MODES = ("auto", "1", "0")
_CFLAGS = ["-O3", "-march=native", "-fopenmp"]
_LDFLAGS = ["-fopenmp"]
# Below this many elements a map costs less than a kernel call's set-up: ATen's ops are used.
_SMALL = 1 << 15

_state: dict[str, object] = {"status": None, "reason": "", "enabled": True, "bn_inside": True}
# The loaded library as a Python module: its direct entries for the two block ops (the same
# dispatcher call as torch.ops.senet_native.*, minus torch.ops' argument matching in Python).
# None where the ops were registered by another load of the library in this process.
_direct: object | None = None


def mode() -> str:
    """``SENET_NATIVE`` as read now: ``auto``, ``1`` or ``0``."""
    value = os.environ.get("SENET_NATIVE", "auto").strip().lower() or "auto"
    value = {"true": "1", "on": "1", "yes": "1", "false": "0", "off": "0", "no": "0"}.get(
        value, value
    )
    if value not in _MODES:
        raise ValueError(
            f"SENET_NATIVE={value!r} is not understood; set it to auto, 1 (required) or 0 (off)"
        )
    return value


def cache_dir() -> Path:
    """Where builds are kept: ``$SENET_NATIVE_CACHE`` or ``~/.cache/senet/native``."""
    root = os.environ.get("SENET_NATIVE_CACHE")
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "senet" / "native"


def build_name() -> str:
    """One build per source, PyTorch version, compiler flags and CPU (``-march=native``)."""
    from senet.utils.cpu import cpu_info

    info = cpu_info()
    key = "\n".join(
        [
            _SOURCE.read_text(),
            torch.__version__,
            " ".join(_CFLAGS),
            info.model,
            " ".join(sorted(info.flags)),
            info.capability,
        ]
    )
    return "senet_se_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _unsupported_platform() -> str:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"built only on Linux x86-64 (this is {sys.platform} {platform.machine()})"
    return ""


def _loaded() -> bool:
    try:
        torch.ops.senet_native.scale  # noqa: B018 (resolving the op is the check)
    except (AttributeError, RuntimeError):
        return False
    return True


def _ninja_on_path() -> None:
    """cpp_extension runs ``ninja`` from PATH; pip's ninja sits in the environment's bin folder,
    which is not on PATH unless the environment is activated."""
    if shutil.which("ninja"):
        return
    folders = [Path(sys.executable).parent]
    with contextlib.suppress(ImportError):
        import ninja

        folders.insert(0, Path(ninja.BIN_DIR))
    for folder in folders:
        if (folder / "ninja").exists():
            os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
            return


def _import_library(name: str, library: Path) -> object:
    """Load the built library as a Python module (which also registers its torch.ops)."""
    spec = importlib.util.spec_from_file_location(name, library)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {library} as a Python extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_and_load() -> None:
    global _direct
    if _loaded():  # a library registers its ops once per process
        return
    name = build_name()
    directory = cache_dir() / name
    library = directory / f"{name}.so"
    done = directory / "built"  # written after a complete build (torch's own lock file stays)
    if library.exists() and done.exists():
        _direct = _import_library(name, library)
        return
    from torch.utils import cpp_extension  # imported only to build (it warns about CUDA on import)

    directory.mkdir(parents=True, exist_ok=True)
    _ninja_on_path()
    print(
        f"senet: compiling the native SE kernels for this CPU (once, about 20 s; cached in "
        f"{directory}; SENET_NATIVE=0 skips them)",
        file=sys.stderr,
        flush=True,
    )
    _direct = cpp_extension.load(
        name=name,
        sources=[str(_SOURCE)],
        extra_cflags=_CFLAGS,
        extra_ldflags=_LDFLAGS,
        build_directory=str(directory),
        is_python_module=True,
        verbose=False,
    )
    done.write_text(f"{torch.__version__}\n")


def available() -> bool:
    """Whether the kernels are loaded (building or loading them on the first call, per ``mode``)."""
    if _state["status"] is None:
        _state["status"], _state["reason"] = _try_load()
    return _state["status"] == "on"


def _try_load() -> tuple[str, str]:
    wanted = mode()
    if wanted == "0":
        return "off", "SENET_NATIVE=0"
    reason = _unsupported_platform()
    attempted = not reason
    if attempted:
        try:
            _build_and_load()
            return "on", ""
        except Exception as error:  # compiler, ninja, linker or loader: all mean "not here"
            lines = [line for line in str(error).strip().splitlines() if line.strip()]
            reason = f"{type(error).__name__}: {lines[-1] if lines else 'build failed'}"
    if wanted == "1":
        raise RuntimeError(
            f"SENET_NATIVE=1 but the native SE kernels cannot be used: {reason}. Install a C++ "
            "compiler and ninja (pip install 'senet[native]'), or set SENET_NATIVE=auto or 0"
        )
    if not attempted:  # nothing the user could fix here: no warning (the settings line says it)
        return "off", reason
    warnings.warn(
        f"senet: native SE kernels unavailable ({reason}); using the PyTorch fast path "
        "(same results, slower on channels-last CPU maps). SENET_NATIVE=0 silences this.",
        RuntimeWarning,
        stacklevel=3,
    )
    return "off", reason


def status() -> str:
    """``"on"``, or ``"off (why)"``; loads the kernels if that has not been tried yet."""
    available()
    return "on" if _state["status"] == "on" else f"off ({_state['reason']})"


def describe_for(device: torch.device | str) -> str:
    """``"; native SE kernels on"`` / ``"… off (why)"`` for a run on ``device`` (either layout),
    ``""`` where the kernels would not apply (not CPU). Builds them if not yet tried."""
    if torch.device(device).type != "cpu":
        return ""
    return f"; native SE kernels {status()}"


def reset() -> None:
    """Forget the outcome of the last attempt so that the next call tries again (tests)."""
    _state["status"], _state["reason"] = None, ""


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the enclosed code on ATen's kernels only (benchmarks: the kernels against ATen)."""
    previous = _state["enabled"]
    _state["enabled"] = False
    try:
        yield
    finally:
        _state["enabled"] = previous


@contextlib.contextmanager
def batchnorm_outside() -> Iterator[None]:
    """Run a block's last BatchNorm as its own module before the SE node, not inside it
    (benchmarks: what ``bn_squeeze_excite`` saves)."""
    previous = _state["bn_inside"]
    _state["bn_inside"] = False
    try:
        yield
    finally:
        _state["bn_inside"] = previous


@contextlib.contextmanager
def via_torch_ops() -> Iterator[None]:
    """Call the block ops through torch.ops, not the library's direct entries (benchmarks: what
    the direct call saves)."""
    global _direct
    previous = _direct
    _direct = None
    try:
        yield
    finally:
        _direct = previous


def bn_inside() -> bool:
    """Blocks may run their last BatchNorm inside the SE node (not within ``batchnorm_outside``)."""
    return bool(_state["bn_inside"])


def applies(*maps: torch.Tensor) -> bool:
    """The kernels serve these maps: contiguous (NCHW or channels-last) CPU float32/bf16 maps of
    one shape and strides, large enough to pay, not being traced (a TorchScript/ONNX graph must
    not depend on this library) nor seen by a dispatch mode (``FlopCounterMode``, fake tensors:
    they would see one opaque op instead of the block's), and the kernels loaded (built on the
    first such call)."""
    x = maps[0]
    if not (
        _state["enabled"]
        and not torch.jit.is_tracing()
        and not torch._C._len_torch_dispatch_stack()
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and x.dim() == 4
        and x.numel() >= _SMALL
        and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last))
    ):
        return False
    if not all(
        m.dtype == x.dtype and m.shape == x.shape and m.stride() == x.stride() for m in maps[1:]
    ):
        return False
    return _state["status"] == "on" or (_state["status"] is None and available())


def scale(
    x: torch.Tensor, s: torch.Tensor, shortcut: torch.Tensor | None, relu: bool
) -> torch.Tensor:
    """``relu?(x · s + shortcut?)`` in one pass; ``s`` holds N×C per-channel factors."""
    return torch.ops.senet_native.scale(x, s, shortcut, relu)


def relu_grad_sum(
    grad: torch.Tensor, out: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g, Σ_hw g·x)`` with ``g = grad · [out > 0]``; the sum N×C in float32."""
    return torch.ops.senet_native.relu_grad_sum(grad, out, x)


def product_sum(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``Σ_hw grad·x`` as N×C float32."""
    return torch.ops.senet_native.product_sum(grad, x)


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """``mean_hw x`` as N×C float32 (float32 sums rounded once to ``x``'s dtype, as ``x.sum``)."""
    return torch.ops.senet_native.squeeze(x)


_GATES = {"sigmoid": 0, "tanh": 1, "relu": 2}


def _entry(name: str, tensors: tuple[torch.Tensor | None, ...]) -> Callable[..., torch.Tensor]:
    """The library's direct entry for op ``name`` (the same dispatcher call as torch.ops, ~25 µs
    cheaper a call at batch 1), or torch.ops' where a tensor subclass or a TorchFunctionMode
    should see the op, or the library was registered by another load."""
    if _direct is not None and not torch._C._has_torch_function(tensors):
        return getattr(_direct, name)
    return getattr(torch.ops.senet_native, name)


def squeeze_excite(
    x: torch.Tensor,
    shortcut: torch.Tensor | None,
    weights: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None],
    gate: str,
    relu: bool,
) -> torch.Tensor:
    """The whole average-squeeze SE block ``relu?(x · s(x) + shortcut?)`` as one C++ autograd
    node; ``weights`` = (W1, b1, W2, b2) of the two FC layers (1×1 convolutions)."""
    w1, b1, w2, b2 = weights
    op = _entry("squeeze_excite", (x, shortcut, w1, b1, w2, b2))
    return op(x, shortcut, w1, b1, w2, b2, _GATES[gate], relu)


def bn_squeeze_excite(
    y: torch.Tensor,
    shortcut: torch.Tensor | None,
    bn: torch.nn.BatchNorm2d,
    weights: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None],
    gate: str,
    relu: bool,
) -> torch.Tensor:
    """``relu?(x · s(x) + shortcut?)`` with ``x = bn(y)`` as one C++ autograd node that never
    writes ``x``: the BatchNorm's statistics and the squeeze in one pass over ``y``, the output in
    one more. ``bn``'s running statistics and ``num_batches_tracked`` are updated as its own
    forward would (an affine BatchNorm2d that tracks running statistics)."""
    factor = 0.0
    params, buffers = bn._parameters, bn._buffers  # nn.Module.__getattr__ costs ~0.6 µs a name
    if bn.training:
        buffers["num_batches_tracked"].add_(1)
        factor = 1.0 / float(buffers["num_batches_tracked"]) if bn.momentum is None else bn.momentum
    w1, b1, w2, b2 = weights
    bn_w, bn_b = params["weight"], params["bias"]
    op = _entry("bn_squeeze_excite", (y, shortcut, bn_w, bn_b, w1, b1, w2, b2))
    return op(
        y, shortcut, bn_w, bn_b, w1, b1, w2, b2, buffers["running_mean"], buffers["running_var"],
        bn.training, factor, bn.eps, _GATES[gate], relu,
    )  # fmt: skip


def affine(g: torch.Tensor, s: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``g · s + d`` with N×C per-channel ``s`` and ``d``, in one pass."""
    return torch.ops.senet_native.affine(g, s, d)
