"""The pure pieces of a training step, and the compiled step of K seeds at once.

  grad_fn(params, batch, key) -> (grads, stats)            forward, loss, per-batch means, gradient
  apply_fn(params, opt_state, grads, stats, key, active)   finiteness check, clip + optimizer update,
      -> (params, opt_state, stats)                        applied only if finite
  seed_step(grad_fn, apply_fn)                             one seed's whole step
`ntm.training.parallel.compile_step` compiles it for K seeds (a leading seed axis; one seed is K = 1),
on one device or spread over several.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ntm import metrics
from ntm.training.settings import TrainSettings


# The running mean of training bit errors behind `--lr-drop-below` forgets with this decay per step
# (about 200 steps), long enough that one lucky short sequence at batch 1 does not trigger the drop.
LR_DROP_DECAY = 0.995


class DropState(NamedTuple):
    errors: jax.Array  # running mean of bit errors per sequence, not yet bias-corrected
    count: jax.Array  # steps seen (int32)
    scale: jax.Array  # 1 until the drop, then the drop factor


def one_time_drop(factor: float, below: float | None = None,
                  after_steps: int | None = None) -> optax.GradientTransformationExtraArgs:
    """Scale updates by `factor`, for good, from the first step at which the bias-corrected running mean
    of the `bit_errors` extra argument (training bit errors per sequence) is under `below`, or once
    `after_steps` steps have been taken at the full size, whichever comes first. Its state lives in the
    optimizer state, so checkpoints keep it and a resumed run drops alike."""

    def init(params):
        del params
        return DropState(jnp.zeros([], jnp.float32), jnp.zeros([], jnp.int32), jnp.ones([], jnp.float32))

    def update(updates, state, params=None, *, bit_errors=None, **extra):
        del params, extra
        if bit_errors is None:
            return updates, state
        count = state.count + 1
        errors = LR_DROP_DECAY * state.errors + (1 - LR_DROP_DECAY) * jnp.asarray(bit_errors, jnp.float32)
        mean = errors / (1 - LR_DROP_DECAY ** count.astype(jnp.float32))
        due = jnp.zeros([], bool)
        if below is not None:
            due = due | (mean < below)
        if after_steps is not None:
            due = due | (count > after_steps)
        scale = jnp.where(due, jnp.minimum(state.scale, factor), state.scale)
        updates = jax.tree.map(lambda u: u * scale.astype(u.dtype), updates)
        return updates, DropState(errors, count, scale)

    return optax.GradientTransformationExtraArgs(init, update)


def make_optimizer(settings: TrainSettings) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam or RMSProp (momentum, Graves), with the learning rate held in the
    optimizer state (`inject_hyperparams`), its one place, where the non-finite policy lowers it per seed;
    then, with `lr_drop_below` or `lr_drop_after`, the one-time drop of the step size once training bit
    errors are low or after so many sequences."""

    def build(learning_rate):
        if settings.optimizer == "adam":
            inner = optax.adam(learning_rate)
        else:
            inner = optax.rmsprop(learning_rate, decay=0.95, momentum=settings.momentum, centered=True)
        # Without a drop the state is exactly as before, so older checkpoints still restore.
        after_steps = (None if settings.lr_drop_after is None
                       else -(-settings.lr_drop_after // settings.batch_size))  # the step that reaches it
        drop = ([] if settings.lr_drop_below is None and after_steps is None
                else [one_time_drop(settings.lr_drop, settings.lr_drop_below, after_steps)])
        return optax.chain(optax.clip_by_global_norm(settings.grad_clip), inner, *drop)

    return optax.inject_hyperparams(build)(learning_rate=settings.lr)


# `trim_padding` rounds each batch's length up to a multiple of this: few distinct shapes (few compiles;
# repeat copy: 7) for most of the saving (repeat copy's batches of one: 45 steps on average, against 112).
TRIM_MULTIPLE = 16


def trimmed(batch, multiple: int = TRIM_MULTIPLE):
    """`batch` (arrays [..., B, T, ...] with `lengths` [..., B]) cut after its longest sequence, rounded up
    to a multiple of `multiple` steps (never beyond T). Padding is inert, so the loss and gradients of
    the cut batch are those of the whole one."""
    steps = batch.mask.shape[-1]
    keep = min(steps, -(-max(int(np.max(batch.lengths)), 1) // multiple) * multiple)
    if keep == steps:
        return batch
    axis = batch.mask.ndim - 1  # the time axis of inputs, targets and mask
    cut = lambda array: np.take(array, np.arange(keep), axis=axis)
    return batch._replace(inputs=cut(batch.inputs), targets=cut(batch.targets), mask=cut(batch.mask))


def all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def make_grad_fn(graphdef, rest=None, remat: bool = False, loss_per: str = "sequence"):
    """(params, batch, key) -> (grads, stats): stats are batch means of loss, cost and bit errors.

    `rest` is the model's state besides its parameters (from `nnx.split(model, nnx.Param, ...)`), held fixed.
    `loss_per` chooses the loss's averaging (`metrics.loss`).
    """

    def loss_fn(params, batch, key):
        model = nnx.merge(graphdef, params, *([rest] if rest is not None else []))
        logits = model(batch.inputs, lengths=batch.lengths, rngs=key, remat=remat)
        return metrics.loss(logits, batch.targets, batch.mask, per=loss_per), logits

    def grad_fn(params, batch, key):
        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key)
        stats = metrics.summarize(logits, batch.targets, batch.mask)
        stats["loss"] = loss
        return grads, stats

    return grad_fn


def make_apply_fn(tx: optax.GradientTransformation):
    """(params, opt_state, grads, stats, key, active) -> (params, opt_state, stats).

    A step whose loss or gradient is not finite, or whose seed is not `active`, leaves params and
    optimizer state exactly as they were; `stats["finite"]` says which.
    """

    def apply_fn(params, opt_state, grads, stats, key, active):
        finite = jnp.isfinite(stats["loss"]) & all_finite(grads)
        # Non-finite gradients are zeroed before the optimizer sees them, so no NaN reaches its
        # state even transiently; the update is then discarded by the selection below.
        safe_grads = jax.tree.map(lambda g: jnp.where(finite, g, 0.0), grads)
        updates, new_opt_state = tx.update(safe_grads, opt_state, params,
                                           bit_errors=jnp.where(finite, stats["bit_errors"], 0.0))
        new_params = optax.apply_updates(params, updates)
        apply = finite & active
        keep_unless_applied = lambda new, old: jnp.where(apply, new, old)
        params = jax.tree.map(keep_unless_applied, new_params, params)
        opt_state = jax.tree.map(keep_unless_applied, new_opt_state, opt_state)
        stats = {**stats, "finite": finite, "grad_norm": optax.tree.norm(grads)}
        return params, opt_state, stats

    return apply_fn


def seed_step(grad_fn, apply_fn):
    """One seed's whole step from the two pieces."""

    def step(params, opt_state, batch, key, active):
        grads, stats = grad_fn(params, batch, key)
        return apply_fn(params, opt_state, grads, stats, key, active)

    return step
