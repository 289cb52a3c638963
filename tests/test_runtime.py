"""Tests of the process tuning that keeps XLA's large per-step buffers mapped between steps."""

import ctypes
import ctypes.util
import sys

import pytest

from ntm import runtime


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_tune_malloc_is_accepted_by_glibc_and_keeps_a_large_block_in_the_heap():
    assert runtime.tune_malloc() is True
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # A 16 MiB block below the raised mmap threshold comes from the heap, so freeing it and asking
    # again returns the same, already mapped, address instead of a fresh mapping.
    first = libc.malloc(16 * 2**20)
    libc.free(first)
    second = libc.malloc(16 * 2**20)
    libc.free(second)
    assert first == second
