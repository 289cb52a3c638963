"""Process settings that make XLA on the CPU fast: large buffers kept mapped, reductions left to XLA.

A training step allocates its large temporaries afresh every call (the stacked per-step memories
of backpropagation through time, tens of MB). glibc serves blocks that large with mmap and gives
them back with munmap, so every step pays page faults to touch them again: on a 2-core machine
that was half the time of a batch-32 copy step. Raising the mmap and trim thresholds keeps the
blocks in the heap, where the next step finds them already mapped. The CLI and benchmarks call
`tune_malloc()`; programs that import ntm may call it themselves. A no-op off glibc.

`tune_xla()` keeps XLA's XNNPACK ("YNN") fusions to matrix products: its reduction fusions were
the slowest ops of the vmapped many-seeds step (110 us for an [8,1,128,20] -> [8,20] sum), and
without them 8 seeds at batch 1 ran 16.3 -> 10.3 ms per step, single runs unchanged. The flag is
experimental, so it is set only for the JAX versions it was measured on, and never over a user's
own setting; it must run before JAX's first computation. It also turns off Eigen's intra-op threads
(EIGEN_FLAG, a long-standing XLA flag): an NTM step's ops are too small to share, and handing them to a
thread pool cost time: a batch-32 copy step took 31-33 ms with them and 22-23 ms without, batch 8
9.7-12.5 against 9.0-9.1 (same run, alternated; the LSTM and DNC baselines unchanged).

`set_host_devices(batch_size, seeds)` makes XLA show one CPU device per core where the batch or
the seeds divide among them, so `ntm.training.parallel` can give each core its share: a training
step is a long chain of small ops that XLA's own threads cannot share, so without it the second
core idles. It too must run before JAX starts. A user overrides the count with
NTM_HOST_DEVICES=N (1 turns it off) or by setting `--xla_force_host_platform_device_count`
in XLA_FLAGS themselves; `taskset` (fewer cores) lowers it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re

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


YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT"
# JAX versions whose XLA has the flag and on which it was measured (0.10.2).
YNN_FLAG_VERSIONS = ("0.10.",)


EIGEN_FLAG = "--xla_cpu_multi_thread_eigen=false"


def tune_xla() -> tuple[str, ...]:
    """Add EIGEN_FLAG, and YNN_FLAG where this JAX is known to take it, to XLA_FLAGS unless the user
    set those options; returns which of the two are in effect."""
    import jax

    flags = os.environ.get("XLA_FLAGS", "")
    wanted = [(EIGEN_FLAG, "xla_cpu_multi_thread_eigen", True),
              (YNN_FLAG, "ynn_fusion_type", jax.__version__.startswith(YNN_FLAG_VERSIONS))]
    added = [flag for flag, option, applies in wanted if applies and option not in flags]
    if added:
        os.environ["XLA_FLAGS"] = " ".join([flags, *added]).strip()
    in_effect = os.environ.get("XLA_FLAGS", "").split()
    return tuple(flag for flag, _, _ in wanted if flag in in_effect)


DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
HOST_DEVICES_ENV = "NTM_HOST_DEVICES"


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, so `taskset -c 0` gives 1)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def host_device_count(batch_size: int, seeds: int = 1, cores: int | None = None) -> int:
    """The most host devices, up to the cores, among which the seeds or the batch divide (1 if none)."""
    cores = available_cores() if cores is None else cores
    for count in range(cores, 1, -1):
        if seeds % count == 0 or batch_size % count == 0:
            return count
    return 1


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:
        return False
    return xla_bridge.backends_are_initialized()


def set_host_devices(batch_size: int, seeds: int = 1, count: int | None = None, granted: bool = False) -> int:
    """Ask XLA for `count` CPU devices (default: `host_device_count`); returns the count in effect.

    Precedence: a `--xla_force_host_platform_device_count` the user put in XLA_FLAGS, then the
    NTM_HOST_DEVICES environment variable, then `count`, then one per core where the batch or the
    seeds divide. With `granted` (the cores a scheduler such as Ray granted this process) `count` wins
    over both, which a worker may have inherited from its driver. Once JAX has started its backends the
    flag can no longer act; the count JAX already has is returned.
    """
    if _backends_started():
        import jax

        return len(jax.devices("cpu"))
    flags = os.environ.get("XLA_FLAGS", "")
    if granted:
        flags = re.sub(re.escape(DEVICE_COUNT_FLAG) + r"=\d+", "", flags).strip()
        os.environ["XLA_FLAGS"] = flags
        os.environ.pop(HOST_DEVICES_ENV, None)
    users = re.search(re.escape(DEVICE_COUNT_FLAG) + r"=(\d+)", flags)
    if users:
        return int(users.group(1))
    setting = os.environ.get(HOST_DEVICES_ENV, "").strip()
    if setting:
        if not setting.isdigit() or int(setting) < 1:
            raise ValueError(f"{HOST_DEVICES_ENV} must be a positive integer, got {setting!r}")
        count = int(setting)
    elif count is None:
        count = host_device_count(batch_size, seeds)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an integer >= 1, got {count!r}")
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{flags} {DEVICE_COUNT_FLAG}={count}".strip()
    return count
