"""Figures of `ntm reproduce`'s results page: the models' learning curves with the median and spread over
seeds, and how a trained NTM addresses its memory on priority sort (the paper's Figure 17) and N-grams
(its Figure 15).

    plot_seed_curves({"ntm": [records of seed 0, seed 1, ...], "lstm": [...]}, "copy-learning.png", "copy")
    plot_priority_sort_addressing("runs/priority_sort-ntm/seed-0", "priority_sort-addressing.png")
    plot_ngram_contexts("runs/ngrams-ntm/seed-0", "ngrams-contexts.png")

The curve figure is pure (records in, PNG out); `thinned_curve` keeps a seed's curve small enough for the
reproduction's records (so the page can be drawn again after its run directories are gone) and
`curve_records` turns it back into records. The two addressing figures trace a batch of fresh sequences
through a run's model (as `ntm show` traces one) and return what they measured beside the path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ntm.plots.figures import (
    WEIGHT_CMAP,
    count_formatter,
    log_y_axis,
    new_figure,
    positive,
    save_figure,
    training_rows,
)
from ntm.training.records import Record, Training

# Points of the common grid of sequences that every seed's curve is read at (log-spaced).
GRID_POINTS = 120
# Bins of a thinned curve: several per grid point, so thinning does not change the figure visibly.
THINNED_POINTS = 400
# Fresh sequences traced for the addressing figures, from their own seed (apart from training and tests).
ADDRESSING_SEQUENCES = 32
ADDRESSING_SEED = 5_000_029


# ----------------------------------------------------------------------------- curves over seeds


class Band(NamedTuple):
    """One model's curve of one statistic on a grid of sequences: the median over seeds and its spread."""

    sequences: np.ndarray  # [G] grid points this model reached
    median: np.ndarray  # [G]
    low: np.ndarray  # [G] the best seed
    high: np.ndarray  # [G] the worst seed
    seeds: int


def seed_values(records: Sequence[Record], field: str, edges: np.ndarray) -> np.ndarray:
    """One seed's `field` of its training rows on the grid whose bins end at edges[1:]: the mean of the rows
    in each bin, the last value carried over empty bins and past the seed's end (a seed stops once certified
    solved), NaN before its first row."""
    rows = training_rows(records)
    x = np.array([row.sequences for row in rows], dtype=float)
    y = np.array([getattr(row, field) for row in rows], dtype=float)
    values = np.full(len(edges) - 1, np.nan)
    last = np.nan
    for i, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        inside = (x > low) & (x <= high) & np.isfinite(y)
        if inside.any():
            last = float(y[inside].mean())
        values[i] = last
    return values


def thinned_curve(records: Sequence[Record], points: int = THINNED_POINTS) -> dict[str, list[float]]:
    """A seed's training rows in at most `points` log-spaced bins of sequences: per bin the last row's
    sequences and the mean cost and bit errors (JSON-ready lists; the figure reads its grid from these)."""
    rows = training_rows(records)
    if not rows:
        return {"sequences": [], "cost": [], "bit_errors": []}
    order = np.argsort([row.sequences for row in rows], kind="stable")  # a resumed run may log a row again
    x = np.array([rows[i].sequences for i in order], dtype=float)
    values = {field: np.array([getattr(rows[i], field) for i in order], dtype=float) for field in ("cost", "bit_errors")}
    edges = np.geomspace(max(x[0], 1.0) * (1 - 1e-9), max(x[-1], 1.0), points + 1)
    bins = np.clip(np.searchsorted(edges, x, side="left") - 1, 0, points - 1)
    _, starts = np.unique(bins, return_index=True)  # sorted, so each bin is one run of rows
    ends = np.append(starts[1:], len(x))
    curve = {"sequences": [int(x[end - 1]) for end in ends], "cost": [], "bit_errors": []}
    for field, column in values.items():
        for start, end in zip(starts, ends):
            finite = column[start:end][np.isfinite(column[start:end])]
            curve[field].append(float(finite.mean()) if finite.size else math.nan)
    return curve


def curve_records(curve: Mapping[str, Sequence[float]]) -> list[Training]:
    """A thinned curve as training records, for `plot_seed_curves`."""
    return [Training(step=i + 1, sequences=int(sequences), cost=float(cost), bit_errors=float(errors))
            for i, (sequences, cost, errors) in enumerate(zip(curve["sequences"], curve["cost"], curve["bit_errors"]))]


def seed_bands(models: Mapping[str, Sequence[Sequence[Record]]], field: str,
               points: int = GRID_POINTS) -> dict[str, Band]:
    """Each model's median and spread (best and worst seed) of `field` ("cost" or "bit_errors") over its
    seeds, on one log-spaced grid of sequences shared by all models; a model's band ends where its longest
    seed ended."""
    ends = {name: [max((row.sequences for row in training_rows(records)), default=0) for records in seeds]
            for name, seeds in models.items()}
    starts = [row.sequences for seeds in models.values() for records in seeds for row in training_rows(records)[:1]]
    if not starts:
        raise ValueError("the learning curves need at least one logged training row")
    top = max(max(values) for values in ends.values() if values)
    edges = np.geomspace(max(min(starts), 1) * (1 - 1e-9), top, points + 1)
    grid = edges[1:]
    bands = {}
    for name, seeds in models.items():
        if not seeds:
            continue
        stacked = np.stack([seed_values(records, field, edges) for records in seeds])
        reached = grid <= max(ends[name]) * (1 + 1e-9)
        stacked = stacked[:, reached]
        with np.errstate(all="ignore"):
            known = np.isfinite(stacked).any(axis=0)
            median = np.where(known, np.nanmedian(np.where(known, stacked, 0), axis=0), np.nan)
            low = np.where(known, np.nanmin(np.where(known, stacked, 0), axis=0), np.nan)
            high = np.where(known, np.nanmax(np.where(known, stacked, 0), axis=0), np.nan)
        bands[name] = Band(grid[reached], median, low, high, len(seeds))
    return bands


def seed_curves_figure(models: Mapping[str, Sequence[Sequence[Record]]], title: str) -> Figure:
    """Training cost (log) and bit errors per sequence against sequences seen (log): per model the median
    over its seeds as a line and the range from its best to its worst seed shaded."""
    figure = new_figure(10.0, 6.5)
    cost_axes = figure.add_subplot(2, 1, 1, label="cost")
    error_axes = figure.add_subplot(2, 1, 2, sharex=cost_axes, label="bit_errors")
    for axes, field in ((cost_axes, "cost"), (error_axes, "bit_errors")):
        for i, (name, band) in enumerate(seed_bands(models, field).items()):
            colour = f"C{i % 10}"
            values = positive(band.median) if field == "cost" else band.median
            label = f"{name} (median of {band.seeds} seeds)" if band.seeds > 1 else f"{name} (1 seed)"
            axes.plot(band.sequences, values, color=colour, lw=1.6, label=label, gid=f"median_{field}/{name}")
            if band.seeds > 1:
                low, high = (positive(band.low), positive(band.high)) if field == "cost" else (band.low, band.high)
                axes.fill_between(band.sequences, low, high, color=colour, alpha=0.2, lw=0,
                                  gid=f"spread_{field}/{name}")
        axes.set_xscale("log")
        axes.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        axes.xaxis.set_major_formatter(FuncFormatter(count_formatter))
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.grid(True, which="major", alpha=0.3)
    log_y_axis(cost_axes)
    cost_axes.set_ylabel("cost per sequence (bits)")
    error_axes.set_ylabel("bit errors per sequence")
    error_axes.set_xlabel("sequences seen (per seed); shaded: best to worst seed")
    error_axes.set_ylim(bottom=0)
    cost_axes.tick_params(labelbottom=False)
    cost_axes.legend(fontsize=8, loc="best")
    figure.suptitle(title, fontsize=12)
    return figure


def plot_seed_curves(models: Mapping[str, Sequence[Sequence[Record]]], path: Path | str,
                     title: str = "learning curves") -> Path:
    """`{model: [each seed's metrics.jsonl records]}` as one learning-curve figure (PNG at `path`)."""
    if not any(models.values()):
        raise ValueError("plot_seed_curves needs at least one seed")
    return save_figure(seed_curves_figure(models, title), path)


# ----------------------------------------------------------------------------- addressing (Figures 15, 17)


def traced_batch(run_dir: Path | str, sequences: int = ADDRESSING_SEQUENCES):
    """(task, batch, trace as {field: [B,T,...] array}) of fresh sequences at the hardest training case (the
    largest generalisation value of the run's training difficulty) through the run's NTM."""
    import jax
    from flax import nnx

    from ntm.plots.runs import traced_forward
    from ntm.training.runs import load_run

    run = load_run(run_dir)
    if run.settings.model != "ntm":
        raise ValueError(f"the addressing figures read an NTM's weightings; {run_dir} holds a {run.settings.model}")
    batch = run.task.sample(np.random.default_rng(ADDRESSING_SEED), sequences, **run.task.hardest())
    graphdef, state = nnx.split(run.model)
    _, trace = traced_forward(graphdef, state, batch.inputs, batch.lengths, jax.random.key(0))
    return run.task, batch, {name: np.asarray(field) for name, field in jax.device_get(trace)._asdict().items()}


class Addressing(NamedTuple):
    path: Path
    correlation: float  # priority sort: write location against priority; N-grams: share of reads at the context's slot
    distinct: int  # priority sort: write locations used; N-grams: distinct slots of the contexts seen
    contexts: int = 0  # N-grams: contexts seen in the traced sequences


def priority_sort_addressing(priorities: np.ndarray, write_weights: np.ndarray, read_weights: np.ndarray,
                             items: int, outputs: int, order: np.ndarray) -> dict[str, np.ndarray]:
    """Where the first write and read heads point: per item, the location written at its input step against
    its priority; per output step, the location read against the priority of the item it should output.

    priorities [B, items]; write/read weights [B, T, heads, N]; order [B, outputs]: item index of each output."""
    rows = np.arange(len(priorities))[:, None]
    written = write_weights[:, :items, 0].argmax(-1)  # [B, items]
    read = read_weights[:, items + 1:items + 1 + outputs, 0].argmax(-1)  # [B, outputs]
    return {"item_priority": priorities.ravel(), "write_location": written.ravel(),
            "output_priority": priorities[rows, order].ravel(), "read_location": read.ravel()}


def plot_priority_sort_addressing(run_dir: Path | str, out: Path | str,
                                  sequences: int = ADDRESSING_SEQUENCES) -> Addressing:
    """The paper's Figure 17 for a trained NTM: write location against priority, read location against the
    priority of the item each output step should give, and both weightings of one sequence over time."""
    task, batch, trace = traced_batch(run_dir, sequences)
    items, outputs = task.difficulty["max_items"], task.difficulty["num_outputs"]
    priorities = np.asarray(batch.inputs)[:, :items, task.bits]
    order = np.argsort(-priorities, axis=1)[:, :outputs]
    points = priority_sort_addressing(priorities, trace["write_weights"], trace["read_weights"], items, outputs, order)
    correlation = float(np.corrcoef(points["item_priority"], points["write_location"])[0, 1]) \
        if np.ptp(points["write_location"]) > 0 else 0.0
    figure = new_figure(13.0, 7.0)
    grid = figure.add_gridspec(2, 2)
    written = figure.add_subplot(grid[0, 0], label="write_location")
    written.scatter(points["item_priority"], points["write_location"], s=8, alpha=0.5, color="C0")
    written.set(xlabel="priority of the item", ylabel="location written (argmax)",
                title=f"writes: correlation with priority {correlation:+.2f}")
    read = figure.add_subplot(grid[0, 1], label="read_location")
    read.scatter(points["output_priority"], points["read_location"], s=8, alpha=0.5, color="C1")
    read.set(xlabel="priority of the item the step should output", ylabel="location read (argmax)",
             title="reads, output steps")
    steps = int(batch.lengths[0])
    for column, (name, title) in enumerate((("write_weights", "write weighting"), ("read_weights", "read weighting"))):
        axes = figure.add_subplot(grid[1, column], label=f"{name}/0")
        axes.imshow(trace[name][0, :steps, 0].T, aspect="auto", origin="lower", cmap=WEIGHT_CMAP, vmin=0, vmax=1,
                    interpolation="nearest")
        axes.axvline(items - 0.5, color="white", lw=0.8, ls="--")
        axes.set(xlabel="time step (dashed: end of the items)", ylabel="location", title=f"{title}, one sequence")
    figure.suptitle(f"priority sort, {items} items: where the NTM writes and reads ({sequences} fresh sequences; "
                    "cf. the paper's Figure 17)", fontsize=11)
    distinct = len(np.unique(points["write_location"]))
    return Addressing(save_figure(figure, out), correlation, distinct)


def contexts_of(bits: np.ndarray, context_bits: int) -> np.ndarray:
    """[B, T] the context at each step: the last `context_bits` input bits up to and including the step, as a
    number (oldest bit most significant), -1 where fewer bits have been seen."""
    bits = (np.asarray(bits) > 0.5).astype(np.int64)
    context = np.zeros(bits.shape, np.int64)
    for age in range(context_bits):
        context[:, age:] |= bits[:, : bits.shape[1] - age] << age
    context[:, : context_bits - 1] = -1
    return context


def weights_by_context(weights: np.ndarray, context: np.ndarray, mask: np.ndarray, contexts: int) -> np.ndarray:
    """[contexts, N]: the mean weighting (first head) at the scored steps of each context."""
    table = np.zeros((contexts, weights.shape[-1]))
    for value in range(contexts):
        chosen = (context == value) & (mask > 0)
        if chosen.any():
            table[value] = weights[..., 0, :][chosen].mean(axis=0)
    return table


def plot_ngram_contexts(run_dir: Path | str, out: Path | str, sequences: int = ADDRESSING_SEQUENCES) -> Addressing:
    """The paper's Figure 15 for a trained NTM, by context (at its training length, 200 bits by default): the mean read weighting at the steps of each
    5-bit context, and the write weighting one step later (where the paper's NTM updates that context's
    counts)."""
    task, batch, trace = traced_batch(run_dir, sequences)
    contexts = 2**task.context_bits
    context = contexts_of(np.asarray(batch.inputs)[..., 0], task.context_bits)
    mask = np.asarray(batch.mask)
    reads = weights_by_context(trace["read_weights"], context, mask, contexts)
    # The write of step t+1 keyed by the context of step t.
    writes = weights_by_context(trace["write_weights"][:, 1:], context[:, :-1], mask[:, :-1], contexts)
    home = reads.argmax(axis=1)  # each context's slot
    chosen = (context >= 0) & (mask > 0)
    seen = np.unique(context[chosen])
    at_home = trace["read_weights"][..., 0, :].argmax(-1)[chosen] == home[context[chosen]]
    share = float(at_home.mean()) if at_home.size else math.nan
    figure = new_figure(13.0, 5.0)
    for column, (table, title) in enumerate(((reads, "read weighting at the context's step"),
                                             (writes, "write weighting one step later"))):
        axes = figure.add_subplot(1, 2, column + 1, label=("read" if column == 0 else "write") + "_by_context")
        image = axes.imshow(table, aspect="auto", origin="lower", cmap=WEIGHT_CMAP, vmin=0, vmax=max(table.max(), 1e-9),
                            interpolation="nearest")
        axes.set(xlabel="memory location", ylabel=f"context (last {task.context_bits} bits as a number)", title=title)
        figure.colorbar(image, ax=axes, fraction=0.04)
    distinct = len(np.unique(home[seen]))
    figure.suptitle(f"N-grams: mean weighting by context ({sequences} fresh sequences); the {len(seen)} contexts seen "
                    f"read {distinct} distinct slots; {share:.0%} of reads at their context's slot "
                    "(cf. the paper's Figure 15)", fontsize=11)
    return Addressing(save_figure(figure, out), share, distinct, len(seen))
