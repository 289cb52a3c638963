"""The steps of `ntm.training.parallel` spread over two XLA CPU devices, against the single-device step.

Run by tests/test_parallel.py as its own process: XLA must be asked for 2 CPU devices before JAX starts.
Prints one JSON line: for each plan (seeds, batch, batch on a one-device mesh) the largest difference of
parameters, optimizer states and statistics after a few steps from `jit(vmap(grad -> apply))`, where the
state was placed, the devices used and the collectives compiled; and the training loop with 2 seeds
spread over the 2 devices against one device.

The grad_fn / apply_fn below have exactly the signatures of `ntm.training.step`:
  grad_fn(params, batch, key) -> (grads, stats)      stats: batch means
  apply_fn(params, opt_state, grads, stats, key, active) -> (params, opt_state, stats)
"""

import json, os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax, jax.numpy as jnp, numpy as np, optax
from flax import nnx
from ntm import NTM, NTMConfig, metrics, tasks
from ntm.training import parallel

task = tasks.get("copy", bits=4, min_length=1, max_length=4)
config = NTMConfig(input_size=task.input_size, output_size=task.output_size, memory_slots=16,
                   memory_width=6, controller_units=24)
tx = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(3e-3))

def models(k):
    return [nnx.split(NTM(config, rngs=nnx.Rngs(s)), nnx.Param) for s in range(k)]

graphdef = models(1)[0][0]

def grad_fn(params, batch, key):
    def loss_fn(p):
        logits = nnx.merge(graphdef, p)(batch.inputs, lengths=batch.lengths)
        return metrics.loss(logits, batch.targets, batch.mask), logits
    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    stats = metrics.summarize(logits, batch.targets, batch.mask)
    # A draw from the key: shows which key each device's slice saw.
    stats.update(loss=loss, draw=jax.random.uniform(key))
    return grads, stats

def apply_fn(params, opt_state, grads, stats, key, active):
    updates, new_opt_state = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    keep = lambda new, old: jnp.where(active, new, old)
    params = jax.tree.map(keep, new_params, params)
    opt_state = jax.tree.map(keep, new_opt_state, opt_state)
    return params, opt_state, {**stats, "grad_norm": optax.tree.norm(grads)}

def stacked(trees):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)

def run(mode, k, b, steps=3, devices=None):
    params = stacked([p for _, p in models(k)])
    opt_state = jax.vmap(tx.init)(params)
    step = parallel.compile_step(grad_fn, apply_fn, seeds=k, batch_size=b, devices=devices, mode=mode)
    rng = np.random.default_rng(0)
    keys = jnp.stack([jax.random.key(s) for s in range(k)])
    active = jnp.array([s != 1 for s in range(k)])  # seed 1 (if any) is inactive: must not move
    history = []
    for _ in range(steps):
        batches = [task.sample(rng, b) for _ in range(k)]
        batch = type(batches[0])(*(np.stack(f) for f in zip(*batches)))
        params, opt_state, stats = step(params, opt_state, batch, keys, active)
        history.append(jax.device_get(stats))
    placed = len(jax.tree.leaves(params)[0].sharding.device_set)
    hlo = step._program.lower(*program_args(step, params, opt_state, batch, keys, active)).compile().as_text() \
        if hasattr(step, "_program") else ""
    collectives = sum(hlo.count(op) for op in ("all-reduce", "all-gather", "collective-permute", "all-to-all",
                                               "reduce-scatter"))
    return jax.device_get((params, opt_state)), history, (placed, len(step_devices(step)), collectives)

def program_args(step, params, opt_state, batch, keys, active):
    # the arguments of the spread program: all five for seeds, (params, batch, keys) for batch
    args = (params, opt_state, batch, keys, active) if step._program_arity == 5 else (params, batch, keys)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), args)

def step_devices(step):
    return step._devices if hasattr(step, "_devices") else [None]

def max_difference(a, b):
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

out = {"devices": jax.device_count()}
references = {}
# auto plans: 2 seeds split over 2 devices; 3 seeds do not, so their batches of 4 are split
cases = {"seeds": ("auto", 2, 4, None), "batch": ("auto", 3, 4, 2),
         # the batch mode on a one-device mesh: how it runs on a single GPU
         "batch_one_device": ("batch", 1, 4, jax.devices()[:1])}
for name, (mode, k, b, devices) in cases.items():
    if (k, b) not in references:
        references[k, b] = run("none", k, b)
    reference_state, reference_stats, _ = references[k, b]
    state, stats, placed = run(mode, k, b, devices=devices)
    without_draw = lambda hist: [{n: v for n, v in s.items() if n != "draw"} for s in hist]
    initial = stacked([p for _, p in models(k)])
    out[name] = {"state": max_difference(reference_state, state),
                 "stats": max_difference(without_draw(reference_stats), without_draw(stats)),
                 "placed_on": placed[0], "devices": placed[1], "collectives": placed[2],
                 "plan": parallel.plan(k, b, devices),
                 "draws": [float(d) for d in stats[0]["draw"]],
                 "moved": max_difference(reference_state[0], jax.device_get(initial)),
                 "frozen_seed_moved": (max_difference(jax.tree.map(lambda x: x[1], state[0]),
                                                      jax.tree.map(lambda x: x[1], initial)) if k > 1 else 0.0)}
out["expected_batch_draws"] = [float((jax.random.uniform(jax.random.fold_in(jax.random.key(s), 0))
                                      + jax.random.uniform(jax.random.fold_in(jax.random.key(s), 1))) / 2)
                               for s in range(3)]
out["plain_draws"] = [float(jax.random.uniform(jax.random.key(s))) for s in range(3)]

# The training loop itself with 2 seeds spread over the 2 devices (their state stays there between
# steps), through checkpoints, held-out checks and fault-injected restores, against one device.
import functools, tempfile
from rich.console import Console
from faults import with_faults
from ntm.evaluate import load_run
from ntm.training import loop
from ntm.training.settings import TrainSettings

loop.make_apply_fn = with_faults(0.3)

def loop_run(devices):
    settings = TrainSettings.for_task(
        "copy", steps=24, batch_size=4, eval_every=8, checkpoint_every=4, log_every=4, until_solved=False,
        nan_patience=1, max_restores=50, judge_sequences=20, screen_sequences=10,
        task_options={"bits": 4, "min_length": 1, "max_length": 4},
        model_options={"memory_slots": 16, "memory_width": 6, "controller_units": 24})
    loop.compile_step = functools.partial(parallel.compile_step, devices=devices)  # the devices to spread over
    with tempfile.TemporaryDirectory() as scratch:
        result = loop.train(settings, run_dir=scratch + "/run", seeds=2, progress=False,
                            console=Console(quiet=True))
        params = [jax.device_get(nnx.state(load_run(r.run_dir).model, nnx.Param)) for r in result.seeds]
        events = [[json.loads(line).get("event") for line in open(r.run_dir / "metrics.jsonl")]
                  for r in result.seeds]
    return params, {"steps": [r.step for r in result.seeds], "checked": all(r.verdict for r in result.seeds),
                    "restores": [e.count("nan_restore") for e in events]}

spread_params, spread_facts = loop_run(2)
single_params, single_facts = loop_run(1)
out["loop"] = {"state": max_difference(spread_params, single_params), "spread": spread_facts,
               "single": single_facts, "seeds_differ": max_difference(spread_params[0], spread_params[1])}
print(json.dumps(out))
