"""Spreading the compiled training step over devices: K seeds, or the batch, split across them.

`compile_step(grad_fn, apply_fn, seeds=K, batch_size=B, devices=None)` returns the step
`(params[K..], opt_state[K..], batch [K,B,...], keys[K], active[K]) -> (params, opt_state, stats[K])`
of `ntm.training.step`, run on every given device:
  - "seeds": with K divisible by the device count D, each device trains K/D of the seeds. Seeds
    share nothing, so the devices never talk to each other.
  - "batch": otherwise, with B divisible by D, each device computes the gradients of its B/D
    sequences for every seed (`jax.shard_map`), and their mean is taken outside the map, in the
    same program, before one update per seed. The mean of the per-device batch means is the
    batch mean, so the update is the single-device one up to float rounding.
    The mean is outside the map on purpose: `lax.pmean` inside it deadlocked XLA's CPU
    all-reduce at batch 8 (a rendezvous timeout that aborted the process).
  - "none": one device, `jit(vmap(grad -> apply))`, as in `ntm.training.step`.
`plan(seeds, batch_size, devices)` says which one `compile_step` picks ("auto").

On a CPU there is one device unless XLA is told to make more
(`--xla_force_host_platform_device_count`, see `ntm.runtime.set_host_devices`); a training
step is a long chain of small ops that XLA's threads cannot share, so one device per core is what
puts the second core to work. On GPUs the same code spreads over the GPUs.

In "batch" mode each device's slice sees the seed's key folded with the device index, so a
`grad_fn` that draws random numbers (a random initial memory) draws different ones for each
slice, as a single device draws different ones for each sequence; results then equal the
single-device path in distribution, not draw for draw.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ntm.training.step import seed_step

MODES = ("auto", "seeds", "batch", "none")
AXIS = "devices"


def resolve_devices(devices: int | Sequence | None = None) -> list:
    """The devices to spread over: all local ones (None), the first `n` (an int), or those given."""
    every = jax.local_devices()
    if devices is None:
        return every
    if isinstance(devices, bool):
        raise ValueError(f"devices must be a count, a list of devices or None, got {devices!r}")
    if isinstance(devices, int):
        if devices < 1:
            raise ValueError(f"devices must be at least 1, got {devices}")
        return every[:devices]
    devices = list(devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    return devices


def plan(seeds: int, batch_size: int, devices: int | Sequence | None = None) -> str:
    """How `compile_step` spreads K seeds of batch B over these devices: "seeds", "batch" or "none".

    Seeds first (no communication at all), then the batch; one device, or sizes that do not
    divide, mean "none".
    """
    count = len(resolve_devices(devices))
    if count == 1:
        return "none"
    if seeds % count == 0:
        return "seeds"
    if batch_size % count == 0:
        return "batch"
    return "none"


def _check_sizes(seeds: int, batch_size: int) -> None:
    for name, value in (("seeds", seeds), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def compile_step(
    grad_fn: Callable,
    apply_fn: Callable,
    *,
    seeds: int,
    batch_size: int,
    devices: int | Sequence | None = None,
    mode: str = "auto",
):
    """The training step of K seeds, compiled for these devices: all local ones by default, the
    first n for `devices=n`, or a list of devices.

    grad_fn(params, batch, key) -> (grads, stats), stats being batch means;
    apply_fn(params, opt_state, grads, stats, key, active) -> (params, opt_state, stats).
    The returned step takes `(params, opt_state, batch, keys, active)` with a leading seed axis
    of size `seeds` on every array (batch arrays are [K,B,...]) and donates params and
    opt_state. `mode` forces "seeds", "batch" or "none" instead of `plan`'s choice; a forced mode
    whose size does not divide by the device count is an error.
    """
    _check_sizes(seeds, batch_size)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    devices = resolve_devices(devices)
    if mode == "auto":
        mode = plan(seeds, batch_size, devices)
    if mode == "none":
        return _single_device_step(grad_fn, apply_fn, devices[0])
    size = seeds if mode == "seeds" else batch_size
    if size % len(devices):
        raise ValueError(f"{mode} mode needs {mode if mode == 'seeds' else 'batch_size'} ({size}) divisible by "
                         f"the {len(devices)} devices")
    mesh = Mesh(np.array(devices), (AXIS,))
    if mode == "seeds":
        return _seed_sharded_step(grad_fn, apply_fn, mesh)
    return _batch_sharded_step(grad_fn, apply_fn, mesh)


def _single_device_step(grad_fn, apply_fn, device):
    if device == jax.devices()[0]:
        # Uncommitted inputs on the default device: explicit shardings here would make the first call
        # (fresh arrays) and the next (the step's own outputs) compile twice.
        return jax.jit(jax.vmap(seed_step(grad_fn, apply_fn)), donate_argnums=(0, 1))
    replicated = jax.sharding.SingleDeviceSharding(device)
    return jax.jit(jax.vmap(seed_step(grad_fn, apply_fn)), donate_argnums=(0, 1),
                   in_shardings=replicated, out_shardings=replicated)


# The maps run with check_vma=False: grad_fn is any model's code, and a scan whose carry starts
# the same on every device (a constant initial memory) and then varies fails JAX's varying-value
# type check; nothing inside the maps communicates, so there is nothing for the check to guard.


def _seed_sharded_step(grad_fn, apply_fn, mesh: Mesh):
    """Each device runs the vmapped step on its K/D seeds; nothing crosses devices."""
    spread = jax.shard_map(jax.vmap(seed_step(grad_fn, apply_fn)), mesh=mesh, in_specs=P(AXIS), out_specs=P(AXIS),
                           check_vma=False)
    sharded = NamedSharding(mesh, P(AXIS))
    return jax.jit(spread, donate_argnums=(0, 1), in_shardings=sharded, out_shardings=sharded)


def _batch_sharded_step(grad_fn, apply_fn, mesh: Mesh):
    """Per-device gradients of B/D sequences in the map; their mean and the update outside it."""

    def local_gradients(params, batch, keys):
        # keys: [K] for every device; fold in the device index so random draws differ per slice.
        index = jax.lax.axis_index(AXIS)
        keys = jax.vmap(lambda key: jax.random.fold_in(key, index))(keys)
        grads, stats = jax.vmap(grad_fn)(params, batch, keys)
        # A new leading device axis: the map stacks the devices' results along it.
        return jax.tree.map(lambda leaf: leaf[None], (grads, stats))

    batch_spec = P(None, AXIS)  # [K, B, ...]: the batch axis is split
    gradients = jax.shard_map(local_gradients, mesh=mesh, in_specs=(P(), batch_spec, P()), out_specs=P(AXIS),
                              check_vma=False)

    def step(params, opt_state, batch, keys, active):
        per_device_grads, per_device_stats = gradients(params, batch, keys)
        grads, stats = jax.tree.map(lambda leaf: jnp.mean(leaf, axis=0), (per_device_grads, per_device_stats))
        return jax.vmap(apply_fn)(params, opt_state, grads, stats, keys, active)

    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, batch_spec)
    return jax.jit(step, donate_argnums=(0, 1),
                   in_shardings=(replicated, replicated, batch_sharding, replicated, replicated),
                   out_shardings=replicated)
