"""CPU capability detection and the automatic precision/layout choice (senet.utils.cpu)."""

from __future__ import annotations

from pathlib import Path

import pytest

from senet.utils import cpu


def _info(*flags: str) -> cpu.CPUInfo:
    return cpu.CPUInfo("Test CPU", frozenset(flags), "AVX2")


@pytest.mark.parametrize(
    ("flags", "capability", "amp", "channels_last"),
    [
        (("avx2", "avx512f", "avx512_bf16", "amx_bf16"), "AMX-BF16", "bf16", True),
        (("avx2", "avx512f", "avx512_bf16"), "AVX512-BF16", "bf16", True),
        (("avx2", "avx512f"), "AVX512", "none", False),
        (("avx2",), "AVX2", "none", False),
    ],
)
def test_auto_choice_follows_the_cpu(
    monkeypatch: pytest.MonkeyPatch, flags: tuple, capability: str, amp: str, channels_last: bool
) -> None:
    monkeypatch.setattr(cpu, "cpu_info", lambda: _info(*flags))
    assert cpu.cpu_info().capability == capability
    choice = cpu.choose_precision("cpu")
    assert (choice.amp, choice.channels_last) == (amp, channels_last)
    assert capability in choice.reason and "Test CPU" in choice.describe()


def test_explicit_choices_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "cpu_info", lambda: _info("avx512_bf16"))
    c = cpu.choose_precision("cpu", amp="none", channels_last=False)
    assert (c.amp, c.channels_last) == ("none", False) and "as asked" in c.reason
    monkeypatch.setattr(cpu, "cpu_info", lambda: _info("avx2"))
    assert cpu.choose_precision("cpu", amp="bf16").amp == "bf16"
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        cpu.choose_precision("cpu", amp="fp16")
    with pytest.raises(ValueError, match="choose one of"):
        cpu.choose_precision("cpu", amp="fp8")


def test_cpuinfo_parsing(tmp_path: Path) -> None:
    f = tmp_path / "cpuinfo"
    block = "processor\t: {}\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512_bf16\n\n"
    f.write_text(block.format(0) + block.format(1))
    name, flags = cpu._read_cpuinfo(f)
    assert name == "AMD EPYC 9R14" and {"avx2", "avx512_bf16"} <= flags
    assert cpu._read_cpuinfo(tmp_path / "missing") == ("", frozenset())


def test_this_machine_is_detected() -> None:
    info = cpu.cpu_info()
    assert info.capability and info.torch_capability  # whatever it is, it is named
