"""Which repeat-copy sequences a trained model still gets wrong, and how large their gradients are
(issue 19: the spikes of the tail). For every (length, repeats) pair of the training range, N fresh
sequences: mean bit errors, the share with any error, the end marker's errors, and the global norm of
each sequence's own gradient (the loss the training step uses, batch of one) -- median and largest.

    python benchmarks/repeat_copy_spikes.py RUN_DIR [--per-pair N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np
import optax
from flax import nnx

from ntm import metrics
from ntm.evaluate import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--per-pair", type=int, default=20)
    args = parser.parse_args()
    run = load_run(args.run)
    task, model = run.task, run.model
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(params, inputs, targets, mask, lengths):
        logits = nnx.merge(graphdef, params, rest)(inputs[None], lengths=lengths[None])
        return metrics.loss(logits, targets[None], mask[None]), logits[0]

    def one(params, inputs, targets, mask, lengths):
        (value, logits), grads = jax.value_and_grad(loss, has_aux=True)(params, inputs, targets, mask, lengths)
        return optax.tree.norm(grads), logits

    per_sequence = jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0, 0)))
    rng = np.random.default_rng(11)
    rows = []
    for length in range(1, 11):
        for repeats in range(1, 11):
            batch = task.sample(rng, args.per_pair, min_length=length, max_length=length, min_repeats=repeats,
                                max_repeats=repeats)
            norms, logits = per_sequence(params, batch.inputs, batch.targets, batch.mask, batch.lengths)
            logits, norms = np.asarray(logits), np.asarray(norms)
            wrong = ((logits > 0) != (batch.targets > 0.5)) * batch.mask[..., None]
            errors = wrong.sum(axis=(1, 2))
            marker = wrong[..., task.bits].sum(axis=1)
            zero_vector = (batch.inputs[:, :length, : task.bits].sum(axis=2) == 0).any(axis=1)
            rows.append((length, repeats, errors.mean(), (errors > 0).mean(), marker.mean(), np.median(norms),
                         norms.max(), norms[errors > 0].mean() if (errors > 0).any() else float("nan"),
                         zero_vector[errors > 0].mean() if (errors > 0).any() else float("nan")))
    rows.sort(key=lambda r: -r[2])
    print(f"run {args.run} at step {run.step}; {args.per_pair} sequences per pair; worst 15 pairs first")
    print("| length | repeats | bit errors | share wrong | end marker | grad norm median | max | "
          "mean over wrong ones | share of wrong ones with an all-zero vector |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows[:15]:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |")
    norms_right = [r[5] for r in rows]
    print(f"median of per-pair median gradient norms: {np.median(norms_right):.3g}; "
          f"pairs with any error: {sum(r[3] > 0 for r in rows)} of 100")


if __name__ == "__main__":
    main()
