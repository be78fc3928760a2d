"""Process-level CPU tuning: glibc malloc thresholds (``senet train`` applies it by default).

Measured on the development machine (docs/performance.md): a fresh 51 MB feature map costs about
ten times a pass over an existing one, because glibc hands allocations above its mmap threshold
(at most 32 MiB by default) straight to the kernel and page-faults them in again on every use.
Raising the thresholds keeps freed maps in the heap for reuse — the effect of LD_PRELOAD=jemalloc
or tcmalloc that PyTorch's CPU tuning guide recommends. It speeds up every model alike and is not
part of the SE fast path: ``senet train`` turns it on (``--keep-freed-memory false`` leaves malloc
alone), ``senet bench`` only with ``--keep-freed-memory``. The cost: memory the process freed is
kept for reuse instead of being returned to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_INT_MAX = 2**31 - 1  # mallopt takes a C int: larger values would wrap (4 GiB became 0)


def keep_freed_memory(threshold: int = 1 << 30) -> bool:
    """Serve allocations up to ``threshold`` bytes from glibc's heap and keep freed memory there
    (trim threshold ``4 × threshold``; both capped at ``2**31 − 1``, the largest C int).

    Returns False (and changes nothing) where the C library is not glibc.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, min(threshold, _INT_MAX))) and bool(
        mallopt(_M_TRIM_THRESHOLD, min(4 * threshold, _INT_MAX))
    )
