"""``keep_freed_memory``: glibc keeps freed maps in the heap (run in subprocesses: mallopt is
process-wide)."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
import textwrap

import pytest

from senet.utils.malloc import keep_freed_memory

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
    reason="glibc malloc tuning applies on Linux only",
)

# Allocate, fill and free a 16 MiB tensor 50 times and count the page faults of the last 40:
# with freed memory kept in the heap the block is reused and faults ~never; when it goes back to
# the system at every free, each round faults its 4,096 pages in again.
_PROBE = textwrap.dedent(
    """
    import resource, sys
    import torch
    if sys.argv[1] == "keep":
        from senet.utils.malloc import keep_freed_memory
        assert keep_freed_memory()
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(50):
        if i == 10:
            start = faults()
        t = torch.empty(4 << 20)
        t.fill_(1.0)
        del t
    print(faults() - start)
    """
)


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


@glibc
def test_freed_memory_is_reused_without_page_faults() -> None:
    # The first version passed 4 GiB as the trim threshold; mallopt's C int wrapped it to 0, so
    # every free gave the memory back and each new map was page-faulted in again (a 3 MB map
    # cost 5× a pass over it).
    pages = (16 << 20) // 4096
    assert _faults("keep") < pages // 4  # 40 rounds: < a quarter of one round's pages


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        keep_freed_memory(0)
