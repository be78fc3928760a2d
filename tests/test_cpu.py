"""senet.utils.cpu: run-time CPU detection and the precision/layout policy (flags monkeypatched)."""

from __future__ import annotations

import pytest
import torch

from senet.utils import cpu as cpu_mod
from senet.utils.cpu import CpuInfo, choose_precision, detect_cpu, parse_cpuinfo

INTEL_AMX = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse avx avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
"""
AMD_BF16 = "model name\t: AMD EPYC 9B14\nflags\t\t: fpu avx avx2 avx512f avx512_bf16 avx512_vnni\n"
AVX2_ONLY = "model name\t: AMD EPYC 7B12\nflags\t\t: fpu sse4_2 avx avx2 fma\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes bf16 sve\nCPU implementer\t: 0x41\n"


def _info(text: str, capability: str = "AVX512") -> CpuInfo:
    model, flags = parse_cpuinfo(text)
    return CpuInfo(model or "unknown", capability, flags, "/proc/cpuinfo")


def test_parse_cpuinfo_reads_model_and_only_the_policy_flags():
    model, flags = parse_cpuinfo(INTEL_AMX)
    assert model.startswith("Intel(R) Xeon(R) Platinum 8481C")
    assert flags == {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
    assert parse_cpuinfo(AVX2_ONLY)[1] == {"avx2"}
    assert parse_cpuinfo(ARM) == (None, frozenset())  # ARM "Features": none of the x86 flags


@pytest.mark.parametrize(
    "text,capability,amp,channels_last",
    [
        (INTEL_AMX, "AVX512", "bf16", True),
        (AMD_BF16, "AVX512", "bf16", True),
        ("model name: Xeon Gold 6148\nflags: avx avx2 avx512f avx512bw\n", "AVX512", "none", True),
        (AVX2_ONLY, "AVX2", "none", True),
        (ARM, "DEFAULT", "none", False),
    ],
    ids=["amx-bf16", "avx512-bf16", "avx512f-only", "avx2-only", "arm"],
)
def test_auto_policy_by_cpu(text, capability, amp, channels_last):
    choice = choose_precision("cpu", cpu=_info(text, capability))
    assert (choice.amp, choice.channels_last) == (amp, channels_last)
    assert choice.capability == capability and choice.reason
    assert choice.memory_format() == (
        torch.channels_last if channels_last else torch.contiguous_format
    )
    assert choice.autocast_dtype() == (torch.bfloat16 if amp == "bf16" else None)


def test_explicit_choices_win_and_are_named_in_the_reason():
    amx = _info(INTEL_AMX)
    off = choose_precision("cpu", amp="none", channels_last=False, cpu=amx)
    assert (off.amp, off.channels_last) == ("none", False)
    assert "amp=none" in off.reason and "channels_last=False" in off.reason
    forced = choose_precision(torch.device("cpu"), amp="bf16", cpu=_info(AVX2_ONLY, "AVX2"))
    assert forced.amp == "bf16" and forced.channels_last is True
    assert "asked for" not in choose_precision("cpu", cpu=amx).reason


def test_bad_amp_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto, none, bf16, fp16"):
        choose_precision("cpu", amp="float8")


def test_capability_alone_implies_the_isa():
    """Without flags (non-Linux), torch's capability string still says AVX2/AVX512."""
    assert CpuInfo("m", "AVX512", frozenset(), "none").avx2
    assert CpuInfo("m", "AVX2", frozenset(), "none").avx2
    assert not CpuInfo("m", "DEFAULT", frozenset(), "none").avx2
    assert not CpuInfo("m", "AVX512", frozenset(), "none").native_bf16


def test_detect_reads_proc_cpuinfo_then_falls_back_to_torch(monkeypatch):
    monkeypatch.setattr(cpu_mod, "_read_cpuinfo", lambda: INTEL_AMX)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    info = detect_cpu()
    assert info.source == "/proc/cpuinfo" and info.amx_bf16 and info.native_bf16
    assert "AMX-BF16" in info.describe() and "AVX512" in info.describe()
    # no /proc/cpuinfo (macOS, Windows): torch's cpuinfo queries
    monkeypatch.setattr(cpu_mod, "_read_cpuinfo", lambda: None)
    for name, value in [
        ("_is_amx_tile_supported", False),
        ("_is_avx512_bf16_supported", True),
        ("_is_avx512_supported", True),
        ("_is_avx2_supported", True),
    ]:
        monkeypatch.setattr(torch.cpu, name, lambda value=value: value, raising=False)
    info = detect_cpu()
    assert info.source == "torch.cpu" and info.avx512_bf16 and not info.amx_bf16
    assert choose_precision("cpu", cpu=info).amp == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert detect_cpu().amx_bf16  # AMX tiles come with AMX-BF16


def test_this_machine_is_described():
    info = cpu_mod.cpu_info()
    assert info.capability and info.model and info.describe()
    choice = choose_precision("cpu")
    assert choice.amp in ("none", "bf16") and isinstance(choice.channels_last, bool)


def test_cuda_policy(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H100")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (9, 0))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    choice = choose_precision("cuda")
    assert (choice.amp, choice.channels_last, choice.capability) == ("bf16", True, "sm_90")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert choose_precision("cuda:0").amp == "fp16"
    assert choose_precision("cuda", amp="none", channels_last=False).channels_last is False


def test_other_devices_stay_float32_nchw():
    choice = choose_precision("meta")
    assert (choice.amp, choice.channels_last) == ("none", False)
