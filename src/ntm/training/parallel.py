"""Spreading the compiled training step over devices: K seeds, or the batch, split across them.

`compile_step(grad_fn, apply_fn, seeds=K, batch_size=B, devices=None)` returns the step
`(params[K..], opt_state[K..], batch [K,B,...], keys[K], active[K]) -> (params, opt_state, stats[K])`
of `ntm.training.step`, run on every given device:
  - "seeds": with K divisible by the device count D, each device trains K/D of the seeds. Seeds
    share nothing, so the devices never talk to each other.
  - "batch": otherwise, with B divisible by D, each device computes the gradients of its B/D
    sequences for every seed (`jax.shard_map`); they are copied to the first device, where their
    mean feeds one update per seed. The mean of the per-device batch means is the batch mean, so
    the update is the single-device one up to float rounding.
  - "none": one device, `jit(vmap(grad -> apply))`, as in `ntm.training.step`.
No compiled program holds a collective (all-reduce, all-gather): XLA's in-process CPU all-reduce
between host devices hung here (see `_batch_sharded_step`), and copies between devices
(`jax.device_put`) do the same job for a few hundred kB per step. In "seeds" mode the parameters
and optimizer state stay spread between steps (seed k on the device that trains it; reading or
replacing a seed works on them as on any array); in "batch" mode they come back to the first device.
`plan(seeds, batch_size, devices, steps)` says which one `compile_step` picks ("auto"): seeds when
they divide; the batch only when each device gets enough work to pay for the split.

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
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P, SingleDeviceSharding

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


# Splitting the batch costs a fixed ~2-3 ms a step on this CPU (copies, a second program, waiting for the
# slower device), so it pays only with enough sequence steps per device (B / D x T). Measured on copy
# and the other tasks' defaults through `ntm train`: 4 x 41 per device ran 0.84x of one core, 4 x 32
# 1.0x; 16 x 41 1.28x, 16 x 37 1.25x, 4 x 204 1.26x.
MIN_SPLIT_STEPS = 400


def plan(seeds: int, batch_size: int, devices: int | Sequence | None = None, steps: int | None = None) -> str:
    """How `compile_step` spreads K seeds of batch B over these devices: "seeds", "batch" or "none".

    Seeds first (no communication at all), then the batch, if each device's share of it is at least
    MIN_SPLIT_STEPS sequence steps (`steps`: the padded length T; None skips that test); one device,
    or sizes that do not divide, mean "none".
    """
    count = len(resolve_devices(devices))
    if count == 1:
        return "none"
    if seeds % count == 0:
        return "seeds"
    if batch_size % count == 0 and (steps is None or batch_size // count * steps >= MIN_SPLIT_STEPS):
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
    steps: int | None = None,
):
    """The training step of K seeds, compiled for these devices: all local ones by default, the
    first n for `devices=n`, or a list of devices.

    grad_fn(params, batch, key) -> (grads, stats), stats being batch means;
    apply_fn(params, opt_state, grads, stats, key, active) -> (params, opt_state, stats).
    The returned step takes `(params, opt_state, batch, keys, active)` with a leading seed axis
    of size `seeds` on every array (batch arrays are [K,B,...]); the caller must not reuse the
    params and opt_state it passed (one device and "batch" donate them; "seeds" copies them out to
    the devices and back). `mode` forces "seeds", "batch" or "none" instead of `plan`'s choice; a
    forced mode whose size does not divide by the device count is an error. `steps`, the padded
    sequence length, lets "auto" keep a batch too small to pay for splitting on one device.
    """
    _check_sizes(seeds, batch_size)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    devices = resolve_devices(devices)
    if mode == "auto":
        mode = plan(seeds, batch_size, devices, steps)
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
    here = SingleDeviceSharding(device)
    return jax.jit(jax.vmap(seed_step(grad_fn, apply_fn)), donate_argnums=(0, 1), in_shardings=here, out_shardings=here)


class SpreadStep:
    """A step that runs compiled programs on several devices; called like a jitted step.

    It takes arrays wherever they are (fresh host arrays, its own previous results) and copies them
    to where its program runs. `_cache_size()` counts the compiles of the spread program, as a
    jitted function's does.
    """

    def __init__(self, run, program, devices, program_arity):
        self._run, self._program = run, program
        self._devices, self._program_arity = devices, program_arity  # for tests: where it runs, what it takes

    def __call__(self, params, opt_state, batch, keys, active):
        return self._run(params, opt_state, batch, keys, active)

    def _cache_size(self) -> int:
        return self._program._cache_size()


# The maps run with check_vma=False: grad_fn is any model's code, and a scan whose carry starts
# the same on every device (a constant initial memory) and then varies fails JAX's varying-value
# type check; nothing inside the maps communicates, so there is nothing for the check to guard.


def _seed_sharded_step(grad_fn, apply_fn, mesh: Mesh) -> SpreadStep:
    """Each device runs the vmapped step on its K/D seeds; the program has no communication."""
    sharded = NamedSharding(mesh, P(AXIS))
    spread = jax.jit(jax.shard_map(jax.vmap(seed_step(grad_fn, apply_fn)), mesh=mesh, in_specs=P(AXIS),
                                   out_specs=P(AXIS), check_vma=False),
                     donate_argnums=(0, 1), in_shardings=sharded, out_shardings=sharded)

    def run(params, opt_state, batch, keys, active):
        # The results stay spread: copying params and optimizer state home and out again every step
        # (a device_put per leaf each way) cost 7 ms a step, more than the step itself at batch 1-8.
        # device_put of the step's own outputs is then free; the caller's fresh arrays are copied out.
        return spread(*jax.device_put((params, opt_state, batch, keys, active), sharded))

    return SpreadStep(run, spread, list(mesh.devices.flat), 5)


def _flatten_seedwise(tree):
    """A pytree of [K,...] leaves -> ([K, n] in their common float dtype, the function that undoes it)."""
    leaves, treedef = jax.tree.flatten(tree)
    seeds = leaves[0].shape[0]
    dtype = jnp.result_type(*[leaf.dtype for leaf in leaves])
    flat = jnp.concatenate([leaf.reshape(seeds, -1).astype(dtype) for leaf in leaves], axis=1)
    shapes = [(leaf.shape, leaf.dtype) for leaf in leaves]

    def unflatten(array):
        out, start = [], 0
        for shape, leaf_dtype in shapes:
            size = int(np.prod(shape[1:], dtype=int))
            out.append(array[:, start:start + size].reshape((array.shape[0],) + shape[1:]).astype(leaf_dtype))
            start += size
        return jax.tree.unflatten(treedef, out)

    return flat, unflatten


def _batch_sharded_step(grad_fn, apply_fn, mesh: Mesh) -> SpreadStep:
    """Per-device gradients of B/D sequences in one program; their mean and the update in another.

    No program holds a collective. An XLA all-reduce between host devices on this 2-core CPU
    (JAX 0.10) waited forever for the other device and aborted the process (a rendezvous timeout),
    even for the mean of one array in an otherwise empty program; `lax.pmean` inside the map
    did the same at batch 8. So each device's gradients, flattened into one [K, n] array, are
    copied to the home device (device_put, a plain copy), where one program averages them and
    updates the parameters; the parameters are copied back out to every device for the next step.
    """
    devices = list(mesh.devices.flat)
    home = SingleDeviceSharding(devices[0])
    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P(None, AXIS))  # [K, B, ...]: the batch axis is split
    structure = {}

    def local_gradients(params, batch, keys):
        # keys: [K] for every device; fold in the device index so random draws differ per slice.
        index = jax.lax.axis_index(AXIS)
        keys = jax.vmap(lambda key: jax.random.fold_in(key, index))(keys)
        grads, stats = jax.vmap(grad_fn)(params, batch, keys)
        flat, structure["unflatten"] = _flatten_seedwise((grads, stats))
        return flat[None]  # a new leading device axis: the map stacks the devices' results along it

    gradients = jax.jit(jax.shard_map(local_gradients, mesh=mesh, in_specs=(P(), P(None, AXIS), P()),
                                      out_specs=P(AXIS), check_vma=False),
                        in_shardings=(replicated, batch_sharding, replicated),
                        out_shardings=NamedSharding(mesh, P(AXIS)))

    def mean_and_update(parts, params, opt_state, keys, active):
        grads, stats = structure["unflatten"](jnp.mean(jnp.concatenate(parts), axis=0))  # parts: [1, K, n] each
        return jax.vmap(apply_fn)(params, opt_state, grads, stats, keys, active)

    update = jax.jit(mean_and_update, donate_argnums=(1, 2))
    position = {device: i for i, device in enumerate(devices)}

    def run(params, opt_state, batch, keys, active):
        params, opt_state, keys, active = jax.device_put((params, opt_state, keys, active), home)
        per_device = gradients(*jax.device_put((params, batch, keys), (replicated, batch_sharding, replicated)))
        shards = sorted(per_device.addressable_shards, key=lambda shard: position[shard.device])
        parts = jax.device_put([shard.data for shard in shards], home)
        return update(parts, params, opt_state, keys, active)

    return SpreadStep(run, gradients, devices, 3)
