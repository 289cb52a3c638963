"""The pure pieces of a training step, and the compiled step of K seeds at once.

  grad_fn(params, batch, key) -> (grads, stats)            forward, loss, per-batch means, gradient
  apply_fn(params, opt_state, grads, stats, key, active)   finiteness check, clip + optimizer update,
      -> (params, opt_state, stats)                        applied only if finite
  seed_step(grad_fn, apply_fn)                             one seed's whole step
`ntm.training.parallel.compile_step` compiles it for K seeds (a leading seed axis; one seed is K = 1),
on one device or spread over several.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ntm import metrics
from ntm.training.settings import TrainSettings


def make_optimizer(settings: TrainSettings) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam or RMSProp (momentum, Graves), with the learning rate held in the
    optimizer state (`inject_hyperparams`), its one place, where the non-finite policy lowers it per seed."""

    def build(learning_rate):
        if settings.optimizer == "adam":
            inner = optax.adam(learning_rate)
        else:
            inner = optax.rmsprop(learning_rate, decay=0.95, momentum=settings.momentum, centered=True)
        return optax.chain(optax.clip_by_global_norm(settings.grad_clip), inner)

    return optax.inject_hyperparams(build)(learning_rate=settings.lr)


def all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def make_grad_fn(graphdef, rest=None, remat: bool = False):
    """(params, batch, key) -> (grads, stats): stats are batch means of loss, cost and bit errors.

    `rest` is the model's state besides its parameters (from `nnx.split(model, nnx.Param, ...)`), held fixed.
    """

    def loss_fn(params, batch, key):
        model = nnx.merge(graphdef, params, *([rest] if rest is not None else []))
        logits = model(batch.inputs, lengths=batch.lengths, rngs=key, remat=remat)
        return metrics.loss(logits, batch.targets, batch.mask), logits

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
        updates, new_opt_state = tx.update(safe_grads, opt_state, params)
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
