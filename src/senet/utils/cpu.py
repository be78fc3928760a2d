"""What this machine's processor can do, and the precision/layout that pays on it.

The development and CI machines change CPU between sessions (AMD EPYC with AVX512-BF16, Intel Xeon
with AMX-BF16, ...), so nothing is assumed: ``cpu_info()`` reads the CPU's flags at run time and
``choose_precision`` turns them into a setting for training and inference:

- CPU with native bf16 (AMX-BF16 or AVX512-BF16): bf16 autocast + channels_last (oneDNN's fast
  kernels; docs/performance.md has the measurements);
- other CPUs: fp32, NCHW;
- CUDA: bf16 autocast where the GPU supports it (else fp16), channels_last.

Explicit choices always win (``amp="none"``, ``channels_last=False``).
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

AMP_CHOICES = ("auto", "none", "bf16", "fp16")


@dataclass(frozen=True)
class CPUInfo:
    """The processor's name and the instruction-set features that decide the fast setting."""

    name: str
    flags: frozenset[str]
    torch_capability: str  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...

    @property
    def amx_bf16(self) -> bool:
        return "amx_bf16" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def native_bf16(self) -> bool:
        """bf16 matrix multiplies in hardware (AMX tiles or AVX512-BF16 dot products)."""
        return self.amx_bf16 or self.avx512_bf16

    @property
    def capability(self) -> str:
        """The best of AMX-BF16 > AVX512-BF16 > AVX512 > AVX2 > torch's own report."""
        if self.amx_bf16:
            return "AMX-BF16"
        if self.avx512_bf16:
            return "AVX512-BF16"
        if "avx512f" in self.flags:
            return "AVX512"
        if "avx2" in self.flags:
            return "AVX2"
        return self.torch_capability


def _read_cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, frozenset[str]]:
    name, flags = "", frozenset()
    try:
        text = path.read_text()
    except OSError:
        return name, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return name, flags


@functools.lru_cache(maxsize=1)
def cpu_info() -> CPUInfo:
    """This machine's CPU (cached: it does not change while a process runs)."""
    name, flags = _read_cpuinfo()
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch builds
        cap = "unknown"
    return CPUInfo(name or platform.processor() or platform.machine(), flags, str(cap))


@dataclass(frozen=True)
class PrecisionChoice:
    """The autocast dtype and memory layout a run uses, and why."""

    amp: str  # "none" | "bf16" | "fp16"
    channels_last: bool
    reason: str

    def describe(self) -> str:
        layout = "channels_last" if self.channels_last else "NCHW"
        precision = "fp32" if self.amp == "none" else f"{self.amp} autocast"
        return f"{precision}, {layout} ({self.reason})"


def choose_precision(
    device: torch.device | str, amp: str = "auto", channels_last: bool | None = None
) -> PrecisionChoice:
    """The fastest numerically safe setting for ``device``; explicit ``amp``/``channels_last`` win.

    ``amp``: "auto" | "none" | "bf16" | "fp16"; ``channels_last``: None = auto.
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp={amp!r} is not supported; choose one of {', '.join(AMP_CHOICES)}")
    device = torch.device(device)
    if device.type == "cuda":
        auto_amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        why, auto_cl = f"CUDA {torch.cuda.get_device_name(device)}", True
    elif device.type == "cpu":
        info = cpu_info()
        fast = info.native_bf16
        auto_amp, auto_cl = ("bf16", True) if fast else ("none", False)
        why = f"{info.name or 'CPU'}: {info.capability}" + ("" if fast else ", no native bf16")
    else:
        auto_amp, auto_cl, why = "none", False, f"{device.type}: no automatic choice"
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp fp16 needs a CUDA device; use bf16 (or auto) on CPU")
    chosen_amp = auto_amp if amp == "auto" else amp
    chosen_cl = auto_cl if channels_last is None else bool(channels_last)
    explicit = [n for n, v in (("amp", amp != "auto"), ("layout", channels_last is not None)) if v]
    reason = why + (f"; {' and '.join(explicit)} as asked" if explicit else "")
    return PrecisionChoice(chosen_amp, chosen_cl, reason)
