"""Fault injection for the tests of the non-finite policy: training steps made non-finite on purpose.

The production step has no testing switch; a test swaps `ntm.training.loop.make_apply_fn` for
`with_faults(rate)`, whose steps have their loss and gradients replaced by NaN with probability
`rate`, drawn from each step's key (so a run's faults are the same on one device or spread over several).
"""

import jax
import jax.numpy as jnp

from ntm.training.step import make_apply_fn


def with_faults(rate: float):
    """A `make_apply_fn` whose apply functions poison a `rate` fraction of the steps before applying them."""

    def make_faulty_apply_fn(tx):
        apply_fn = make_apply_fn(tx)

        def apply_with_faults(params, opt_state, grads, stats, key, active):
            fault = jax.random.uniform(jax.random.fold_in(key, 0x5EED)) < rate
            grads = jax.tree.map(lambda g: jnp.where(fault, jnp.nan, g), grads)
            stats = {**stats, "loss": jnp.where(fault, jnp.nan, stats["loss"])}
            return apply_fn(params, opt_state, grads, stats, key, active)

        return apply_with_faults

    return make_faulty_apply_fn
