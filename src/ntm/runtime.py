"""Process settings that make XLA on the CPU fast: keep large buffers in the heap between steps.

A training step allocates its large temporaries afresh every call (the stacked per-step memories
of backpropagation through time, tens of MB). glibc serves blocks that large with mmap and gives
them back with munmap, so every step pays page faults to touch them again: on a 2-core machine
that was half the time of a batch-32 copy step. Raising the mmap and trim thresholds keeps the
blocks in the heap, where the next step finds them already mapped. The CLI and benchmarks call
`tune_malloc()`; programs that import ntm may call it themselves. A no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameter numbers from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
# glibc caps the mmap threshold at 32 MiB on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 1 * 2**30
TOP_PAD = 256 * 2**20


def tune_malloc() -> bool:
    """Keep large allocations in the heap (see the module docstring); True if glibc took it."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return all(
        mallopt(parameter, value) == 1
        for parameter, value in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                                 (M_TOP_PAD, TOP_PAD))
    )
