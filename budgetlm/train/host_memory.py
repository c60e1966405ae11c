"""Keep glibc's malloc from returning big buffers to the OS after every step.

By default glibc serves allocations above a (dynamic, at most 32 MiB) threshold with fresh mmap
calls and unmaps them on free, so every training step on the CPU page-faults its activation and
gradient buffers in again, zero-filled by the kernel. Raising the mmap and trim thresholds makes
those buffers come from the heap and be reused. The process keeps its peak memory instead of
shrinking between steps, which is what a training process does anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
REUSE_UP_TO = 1 << 30
"""Buffers up to 1 GiB come from the reused heap; larger ones are still mapped fresh."""


def reuse_freed_memory(limit: int = REUSE_UP_TO) -> bool:
    """Raise glibc's mmap and trim thresholds to `limit` bytes for this process; False (and no
    change) where the C library is not glibc or refuses the setting."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, limit)) and bool(mallopt(M_TRIM_THRESHOLD, limit))
