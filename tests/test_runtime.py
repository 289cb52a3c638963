"""Tests of the process tuning for XLA on the CPU: malloc thresholds and the XLA flag it sets."""

import ctypes
import ctypes.util
import os
import subprocess
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


def test_tune_xla_adds_its_flags_only_where_measured_and_never_over_the_users(monkeypatch):
    import jax

    both = (runtime.EIGEN_FLAG, runtime.YNN_FLAG)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    monkeypatch.setattr(jax, "__version__", "0.10.2")
    assert runtime.tune_xla() == both
    assert os.environ["XLA_FLAGS"].split() == ["--xla_cpu_enable_fast_math=false", *both]
    assert runtime.tune_xla() == both  # idempotent
    assert os.environ["XLA_FLAGS"].count("ynn_fusion_type") == 1
    assert os.environ["XLA_FLAGS"].count("multi_thread_eigen") == 1

    mine = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_REDUCE --xla_cpu_multi_thread_eigen=true"
    monkeypatch.setenv("XLA_FLAGS", mine)
    assert runtime.tune_xla() == ()
    assert os.environ["XLA_FLAGS"] == mine

    monkeypatch.delenv("XLA_FLAGS")
    monkeypatch.setattr(jax, "__version__", "0.11.0")  # not measured: only the Eigen flag
    assert runtime.tune_xla() == (runtime.EIGEN_FLAG,)
    assert os.environ["XLA_FLAGS"] == runtime.EIGEN_FLAG


def test_the_command_line_starts_no_jax_backend_before_main_sets_its_flags():
    code = ("import ntm.commands.cli; ntm.commands.cli.build_parser(); from jax._src import xla_bridge; "
            "print(xla_bridge.backends_are_initialized())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
