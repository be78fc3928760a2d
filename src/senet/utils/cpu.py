"""What this machine's processor can do, read at run time, and the precision/layout policy built on it.

The development machines change CPU between sessions (an AMD EPYC with AVX512-BF16 one day, an
Intel Xeon with AMX-BF16 the next), so nothing here is assumed: the instruction-set flags come
from ``/proc/cpuinfo`` where it exists, else from PyTorch's own cpuinfo query, and PyTorch's
kernel level from ``torch.backends.cpu.get_cpu_capability()``.

``choose_precision`` turns that into a training/inference setting. The rule, as measured
(docs/performance.md, "Precision and layout by CPU"; CIFAR ResNet-20 training and ResNet-50
batch-1 inference, one thread):

- bf16 autocast pays only with native bf16 arithmetic (AVX512-BF16 or AMX-BF16): 0.47× the
  float32 NCHW step time in training, 0.57× in inference, with channels_last. Without it
  (AVX512F only; AVX2 only) bf16 is emulated and was 1.6× (AVX512F) to 9–13× (AVX2) *slower*
  than float32, so float32 is kept there.
- channels_last paid in float32 as well on x86 with AVX2 or AVX512 (0.69–0.97× NCHW). The AVX2
  and AVX512F-only numbers were taken on an AVX512-BF16 machine with PyTorch and oneDNN limited
  to those instruction sets (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``), not on such CPUs.
- Other CPUs (ARM, or none of these flags): float32 NCHW — not measured, so nothing is claimed.

On CUDA: bf16 where the GPU supports it, else fp16 (with a gradient scaler, which ``senet train``
adds), and channels_last.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

AMP_CHOICES = ("auto", "none", "bf16", "fp16")

# x86 flags (Linux /proc/cpuinfo names) that the policy reads.
_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")
# torch.cpu's private cpuinfo queries, by the same names (used where /proc/cpuinfo is missing).
_TORCH_QUERIES = {
    "amx_tile": "_is_amx_tile_supported",
    "avx512_bf16": "_is_avx512_bf16_supported",
    "avx512f": "_is_avx512_supported",
    "avx2": "_is_avx2_supported",
}


@dataclass(frozen=True)
class CpuInfo:
    """The processor as detected: model name, PyTorch's kernel level, instruction-set flags."""

    model: str
    capability: str
    flags: frozenset[str]
    source: str  # where the flags came from: "/proc/cpuinfo", "torch.cpu" or "none"

    @property
    def amx_bf16(self) -> bool:
        return "amx_bf16" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def avx512f(self) -> bool:
        return "avx512f" in self.flags or self.capability.upper().startswith("AVX512")

    @property
    def avx2(self) -> bool:
        return "avx2" in self.flags or self.avx512f or self.capability.upper() == "AVX2"

    @property
    def native_bf16(self) -> bool:
        """bf16 arithmetic in hardware (AVX512-BF16 or AMX-BF16), where bf16 autocast pays."""
        return self.amx_bf16 or self.avx512_bf16

    def describe(self) -> str:
        """One line: model, PyTorch capability, and the bf16 instructions found."""
        bf16 = [
            n for n, ok in (("AMX-BF16", self.amx_bf16), ("AVX512-BF16", self.avx512_bf16)) if ok
        ]
        isa = "AVX512F" if self.avx512f else "AVX2" if self.avx2 else "no AVX2"
        return (
            f"{self.model} (torch capability {self.capability}; {isa}; "
            f"bf16: {', '.join(bf16) if bf16 else 'none native'})"
        )


def _read_cpuinfo() -> str | None:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None


def _torch_capability() -> str:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def _torch_flags() -> frozenset[str]:
    found = set()
    for flag, name in _TORCH_QUERIES.items():
        query = getattr(torch.cpu, name, None)
        try:
            if query is not None and query():
                found.add(flag)
        except RuntimeError:
            continue
    if "amx_tile" in found:  # every CPU with AMX tiles so far has AMX-BF16 (Sapphire Rapids on)
        found.add("amx_bf16")
    return frozenset(found)


def parse_cpuinfo(text: str) -> tuple[str | None, frozenset[str]]:
    """Model name and the policy's flags from ``/proc/cpuinfo`` text (first processor)."""
    model, flags = None, frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split()) & frozenset(_FLAGS)
        if model is not None and flags:
            break
    return model, flags


def detect_cpu() -> CpuInfo:
    """Detect the processor now (no caching; ``cpu_info()`` caches it)."""
    capability = _torch_capability()
    text = _read_cpuinfo()
    model, flags, source = None, frozenset(), "none"
    if text:
        model, flags = parse_cpuinfo(text)
        source = "/proc/cpuinfo"
    if not flags:
        flags = _torch_flags()
        source = "torch.cpu" if flags else source
    return CpuInfo(model or platform.processor() or platform.machine(), capability, flags, source)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """The processor this process runs on (detected once)."""
    return detect_cpu()


@dataclass(frozen=True)
class PrecisionChoice:
    """What to run with: autocast dtype (``amp``), memory layout, and why."""

    amp: str  # "none" | "bf16" | "fp16"
    channels_last: bool
    reason: str
    cpu: str  # the processor's (or GPU's) name
    capability: str  # PyTorch's CPU kernel level, or the GPU's compute capability

    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)

    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def describe(self) -> str:
        """One line for logs: "bf16 autocast, channels_last (AMD EPYC: AVX512-BF16; why)"."""
        precision = "fp32" if self.amp == "none" else f"{self.amp} autocast"
        layout = "channels_last" if self.channels_last else "NCHW"
        return f"{precision}, {layout} ({self.cpu}: {self.capability}; {self.reason})"


def choose_precision(
    device: torch.device | str,
    amp: str = "auto",
    channels_last: bool | None = None,
    cpu: CpuInfo | None = None,
) -> PrecisionChoice:
    """Autocast dtype and layout for ``device``: bf16 + channels_last where it pays, else float32.

    ``amp`` ("auto", "none", "bf16", "fp16") and ``channels_last`` (None = auto) given explicitly
    always win; "auto"/None apply the measured rule in the module docstring. ``cpu`` overrides
    detection (tests; planning for another machine).
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp={amp!r} is not supported; choose one of {', '.join(AMP_CHOICES)}")
    device = torch.device(device)
    if device.type == "cuda":
        return _choose_cuda(device, amp, channels_last)
    if device.type != "cpu":
        picked_amp = "none" if amp == "auto" else amp
        cl = bool(channels_last)
        why = f"{device.type}: no measured rule, float32 NCHW unless asked"
        return PrecisionChoice(picked_amp, cl, _explicit(why, amp, channels_last), device.type, "-")
    if amp == "fp16":
        raise ValueError("amp fp16 needs a CUDA device; use bf16 (or auto) on CPU")
    info = cpu or cpu_info()
    if amp == "auto":
        picked_amp = "bf16" if info.native_bf16 else "none"
    else:
        picked_amp = amp
    cl = info.avx2 if channels_last is None else channels_last
    if info.native_bf16:
        why = "native bf16 (AVX512-BF16/AMX-BF16): bf16 autocast and channels_last pay"
    elif info.avx2:
        why = "no native bf16 (emulated bf16 was 1.6-13x slower): float32; channels_last pays on AVX2/AVX512"
    else:
        why = "no AVX2/AVX512 found: float32 NCHW (not measured on this kind of CPU)"
    return PrecisionChoice(
        picked_amp, cl, _explicit(why, amp, channels_last), info.model, info.capability
    )


def _choose_cuda(device: torch.device, amp: str, channels_last: bool | None) -> PrecisionChoice:
    name, capability, bf16 = "CUDA device", "-", False
    if torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        major, minor = torch.cuda.get_device_capability(index)
        capability = f"sm_{major}{minor}"
        bf16 = torch.cuda.is_bf16_supported()
    picked_amp = ("bf16" if bf16 else "fp16") if amp == "auto" else amp
    cl = True if channels_last is None else channels_last
    why = "CUDA: bf16 autocast where supported (else fp16 with a gradient scaler), channels_last"
    return PrecisionChoice(picked_amp, cl, _explicit(why, amp, channels_last), name, capability)


def _explicit(reason: str, amp: str, channels_last: bool | None) -> str:
    asked = []
    if amp != "auto":
        asked.append(f"amp={amp}")
    if channels_last is not None:
        asked.append(f"channels_last={channels_last}")
    return reason + (f" (asked for: {', '.join(asked)})" if asked else "")
