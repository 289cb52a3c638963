"""Pure figure functions: arrays and metrics records in, matplotlib figures and PNG files out.

Nothing here reads a run directory; `ntm.plots.runs` does that and calls these. Figures are built
on `matplotlib.figure.Figure` with the Agg canvas and never touch pyplot, so they need no display
and leave the caller's matplotlib backend alone.

Every axes that draws data carries a label (`Axes.get_label()`) naming what it shows, e.g.
"write_weights/0" or "cost", so tests and callers can find the numbers behind a picture.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, LogFormatter, MaxNLocator

from ntm.training.records import Diverged, HeldOut, LevelUp, NanRestore, Record, Solved, Training, of_kind

DPI = 110
FIGURE_WIDTH = 13.0  # inches; wide enough for ~250 time steps at a few pixels each
# Colours: bits dark on white, so red error boxes stand out; weightings in viridis (0..1);
# signed vectors and memory in a diverging map centred on zero.
BITS_CMAP = "Greys"
WEIGHT_CMAP = "viridis"
SIGNED_CMAP = "RdBu_r"
ERROR_COLOUR = "#e41a1c"
PHASE_COLOUR = "#ff7f0e"
UNSCORED_SHADE = dict(color="#9ecae1", alpha=0.35, lw=0)
# The DNC's read modes with its one write head, in the order of its trace.
DNC_READ_MODES = ("backward", "content", "forward")
# Words for the generalisation quantity on an axis.
KEY_LABELS = {"length": "sequence length", "items": "number of items", "repeats": "number of repeats"}


# ----------------------------------------------------------------------------- shared helpers


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: Path | str) -> Path:
    """Write `figure` as a PNG at `path` (parent folders created) and return the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figures are written as PNG; give a path ending in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png")
    return path


def count_formatter(value: float, _position=None) -> str:
    """Axis ticks for sequence counts: 800, 12k, 1.5M."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


class PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which ticks to label, written plainly: 0.01, 16.5, 100."""

    def __call__(self, x, pos=None):
        return f"{x:g}" if super().__call__(x, pos) else ""


def log_y_axis(axes) -> None:
    """A log y axis with plain tick numbers (16.5, 100) rather than 1.65 x 10^1."""
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(PlainLogFormatter())
    axes.yaxis.set_minor_formatter(PlainLogFormatter(minor_thresholds=(2, 0.5)))
    axes.tick_params(axis="y", which="minor", labelsize=8)


def key_label(key: str) -> str:
    return KEY_LABELS.get(key, key)


def setting_text(value: Any) -> str:
    """A setting's value, short, as figures, tables and trial names show it: floats to 3 significant digits."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# ----------------------------------------------------------------------------- the trace figure


@dataclasses.dataclass
class Panel:
    """One image panel of the trace figure: `image[rows, time]` and how to draw it."""

    name: str  # the axes label, e.g. "write_weights/0"
    title: str
    image: np.ndarray
    ylabel: str
    cmap: str
    vmin: float
    vmax: float
    colorbar: str
    ytick_labels: Sequence[str] | None = None


def scored_phase_end(mask: np.ndarray) -> int:
    """The last step before the first scored one: where the input phase ends (or the last step)."""
    scored = np.flatnonzero(mask > 0)
    if scored.size == 0 or scored[0] == 0:
        return len(mask) - 1 if scored.size == 0 else 0
    return int(scored[0] - 1)


def unscored_spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive unscored steps as (first, last) pairs."""
    spans, start = [], None
    for step, scored in enumerate(mask > 0):
        if not scored and start is None:
            start = step
        if scored and start is not None:
            spans.append((start, step - 1))
            start = None
    if start is not None:
        spans.append((start, len(mask) - 1))
    return spans


def symmetric_limit(values: np.ndarray) -> float:
    """A colour range +-limit that holds every value (at least 1e-6 so a zero image still draws)."""
    finite = values[np.isfinite(values)]
    return max(float(np.max(np.abs(finite))) if finite.size else 0.0, 1e-6)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # stable for any logit


def trace_panels(batch: Any, logits: Any, trace: Any, index: int = 0) -> tuple[list[Panel], dict[str, Any]]:
    """The panels of one sequence of a traced batch, and facts about it (steps, errors, memory).

    `batch` is an `ntm.tasks.Batch`; `logits` [B,T,O]; `trace` the model's stacked trace ([B,T,...])
    or None. Images are cropped to the sequence's real steps. Memory and weighting panels appear
    when the trace has those fields (NTM, DNC); an LSTM trace gives its hidden state.
    """
    lengths = np.asarray(batch.lengths)
    if not 0 <= index < len(lengths):
        raise ValueError(f"sequence index {index} is outside the batch of {len(lengths)}")
    steps = int(lengths[index])
    inputs = np.asarray(batch.inputs)[index, :steps]
    targets = np.asarray(batch.targets)[index, :steps]
    mask = np.asarray(batch.mask)[index, :steps]
    logits = np.asarray(logits, dtype=np.float32)[index, :steps]
    outputs = sigmoid(logits)
    wrong = ((logits > 0) != (targets > 0.5)) & (mask[:, None] > 0)
    facts = {
        "steps": steps,
        "mask": mask,
        "errors": wrong,
        "scored_bits": int(mask.sum()) * targets.shape[1],
        "phase_end": scored_phase_end(mask),
        "memory": None,
    }
    if inputs.min() >= 0 and inputs.max() <= 1:
        input_panel = Panel("inputs", "input", inputs.T, "channel", BITS_CMAP, 0, 1, "bit")
    else:  # priorities (priority sort) and repeat counts (repeat copy) are signed numbers, not bits
        limit = symmetric_limit(inputs)
        input_panel = Panel("inputs", "input", inputs.T, "channel", SIGNED_CMAP, -limit, limit, "value")
    panels = [
        input_panel,
        Panel("targets", "target (shaded: not scored)", targets.T, "bit", BITS_CMAP, 0, 1, "bit"),
        Panel("outputs", f"output, sigmoid of the logits ({int(wrong.sum())} bit errors, red boxes)",
              outputs.T, "bit", BITS_CMAP, 0, 1, "probability"),
    ]
    if trace is None:
        return panels, facts
    fields = {name: np.asarray(value)[index, :steps] for name, value in trace._asdict().items()}

    def per_head(name, title, ylabel, cmap, signed, colorbar, head_word):
        values = fields[name]  # [T, heads, size]
        limit = symmetric_limit(values) if signed else 1.0
        for head in range(values.shape[1]):
            panels.append(Panel(f"{name}/{head}", f"{title} ({head_word} {head + 1})", values[:, head].T, ylabel,
                                cmap, -limit if signed else 0.0, limit, colorbar))

    if "write_weights" in fields:
        per_head("write_weights", "write weighting", "location", WEIGHT_CMAP, False, "weight", "head")
    if "read_weights" in fields:
        per_head("read_weights", "read weighting", "location", WEIGHT_CMAP, False, "weight", "head")
    for name, title in (("usage", "usage"), ("allocation", "allocation weighting")):
        if name in fields:
            panels.append(Panel(name, title, fields[name].T, "location", WEIGHT_CMAP, 0, 1, title.split()[0]))
    if "read_modes" in fields:
        modes = fields["read_modes"]
        labels = DNC_READ_MODES if modes.shape[-1] == len(DNC_READ_MODES) else None
        for head in range(modes.shape[1]):
            panels.append(Panel(f"read_modes/{head}", f"read modes (head {head + 1})", modes[:, head].T, "mode",
                                WEIGHT_CMAP, 0, 1, "weight", labels))
    if "add" in fields:
        per_head("add", "add vector", "element", SIGNED_CMAP, True, "value", "write head")
    if "erase" in fields:
        per_head("erase", "erase vector", "element", WEIGHT_CMAP, False, "value", "write head")
    if "reads" in fields:
        per_head("reads", "read vector", "element", SIGNED_CMAP, True, "value", "read head")
    if "hidden" in fields:
        hidden = fields["hidden"]
        limit = symmetric_limit(hidden)
        panels.append(Panel("hidden", "hidden state of the top LSTM layer (no memory)", hidden.T, "unit",
                            SIGNED_CMAP, -limit, limit, "value"))
    if "memory" in fields:
        facts["memory"] = fields["memory"][facts["phase_end"]]  # [N, M] after that step's write
    return panels, facts


def panel_height(panel: Panel) -> float:
    """Inches for a panel: taller for more rows, within bounds so long memories stay compact."""
    rows = panel.image.shape[0]
    return float(np.clip(0.13 * rows, 0.75, 2.0))


def trace_figure(batch: Any, logits: Any, trace: Any, title: str, index: int = 0) -> Figure:
    """The picture of one traced sequence: inputs, targets, outputs with bit errors, and the
    machine's internals over time (one panel per head), with the memory at the end of the input
    phase beside the first write weighting (same location axis)."""
    panels, facts = trace_panels(batch, logits, trace, index)
    steps, memory = facts["steps"], facts["memory"]
    heights = [panel_height(p) for p in panels]
    figure = new_figure(FIGURE_WIDTH, sum(heights) + 0.25 * len(panels) + 1.0)
    # Columns: time panels, their colourbars, then (with memory) a gap, the memory, its colourbar.
    widths = [40, 0.7] + ([3, 13, 0.7] if memory is not None else [])
    grid = figure.add_gridspec(len(panels), len(widths), width_ratios=widths, height_ratios=heights)
    first_axes = None
    for row, panel in enumerate(panels):
        axes = figure.add_subplot(grid[row, 0], sharex=first_axes, label=panel.name)
        first_axes = first_axes or axes
        image = axes.imshow(panel.image, aspect="auto", interpolation="nearest", cmap=panel.cmap,
                            vmin=panel.vmin, vmax=panel.vmax, extent=(-0.5, steps - 0.5, panel.image.shape[0] - 0.5, -0.5))
        axes.set_title(panel.title, loc="left", fontsize=9, pad=3)
        axes.set_ylabel(panel.ylabel, fontsize=8)
        axes.tick_params(labelsize=7, labelbottom=row == len(panels) - 1)
        if panel.ytick_labels is not None:
            axes.set_yticks(range(len(panel.ytick_labels)), panel.ytick_labels)
        elif panel.image.shape[0] <= 4:  # the locator would tick fractions of a row
            axes.set_yticks(range(panel.image.shape[0]))
        else:
            axes.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        bar = figure.colorbar(image, cax=figure.add_subplot(grid[row, 1]))
        bar.set_label(panel.colorbar, fontsize=7)
        bar.ax.tick_params(labelsize=6)
        if panel.name in ("targets", "outputs"):
            for first, last in unscored_spans(facts["mask"]):
                axes.axvspan(first - 0.5, last + 0.5, **UNSCORED_SHADE)
        if panel.name == "outputs":
            bit, time = np.nonzero(facts["errors"].T)
            # Inset boxes, so neighbouring errors stay countable.
            boxes = [Rectangle((t - 0.42, b - 0.42), 0.84, 0.84) for b, t in zip(bit, time)]
            axes.add_collection(PatchCollection(boxes, facecolor="none", edgecolor=ERROR_COLOUR, linewidth=1.2,
                                                label="bit_errors"))
        elif panel.name not in ("inputs", "targets") and memory is not None:
            axes.axvline(facts["phase_end"] + 0.5, color=PHASE_COLOUR, linestyle="--", linewidth=1.0)
        if panel.name == "write_weights/0" and memory is not None:
            draw_memory(figure, grid[row, 3], grid[row, 4], memory, facts["phase_end"], axes)
    first_axes.set_xlim(-0.5, steps - 0.5)
    first_axes.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    panels_axes = [a for a in figure.axes if a.get_label() == panels[-1].name]
    panels_axes[0].set_xlabel("time step", fontsize=9)
    figure.suptitle(title, fontsize=12)
    return figure


def draw_memory(figure: Figure, cell, bar_cell, memory: np.ndarray, phase_end: int, location_axes) -> None:
    """The memory matrix [N, M], rows aligned with the location axis of `location_axes`."""
    axes = figure.add_subplot(cell, sharey=location_axes, label="memory")
    limit = symmetric_limit(memory)
    n, m = memory.shape
    image = axes.imshow(memory, aspect="auto", interpolation="nearest", cmap=SIGNED_CMAP, vmin=-limit, vmax=limit,
                        extent=(-0.5, m - 0.5, n - 0.5, -0.5))
    # Element ticks on top, under the title, so the rows below keep their spacing.
    axes.set_title(f"memory after step {phase_end} (dashed line)", loc="left", fontsize=9, pad=3)
    axes.xaxis.tick_top()
    axes.tick_params(labelsize=7, labelleft=False, pad=1)
    axes.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    bar = figure.colorbar(image, cax=figure.add_subplot(bar_cell))
    bar.set_label("value", fontsize=7)
    bar.ax.tick_params(labelsize=6)


def plot_trace(batch: Any, logits: Any, trace: Any, title: str, path: Path | str, index: int = 0) -> Path:
    """`trace_figure` written to `path` as a PNG; returns the path."""
    return save_figure(trace_figure(batch, logits, trace, title, index), path)


# ----------------------------------------------------------------------------- learning curves


def training_rows(records: Sequence[Record]) -> list[Training]:
    """The logged training steps (not events) with a finite cost, in order."""
    return [record for record in of_kind(records, Training) if math.isfinite(record.cost)]


def positive(values: Sequence[float]) -> np.ndarray:
    """Costs for a log axis: a cost of exactly 0 is drawn at the smallest representable positive value."""
    return np.maximum(np.asarray(values, dtype=float), np.finfo(np.float32).tiny)


def draw_learning_curves(cost_axes, error_axes, runs: Mapping[str, Sequence[Record]]) -> None:
    """Cost (log scale) and bit errors per sequence against sequences seen, one colour per run.

    Solid lines are the logged training rows; dashed lines with dots the held-out checks; dotted
    verticals mark curriculum level changes; stars mark where a run was solved.
    """
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for colour, (label, records) in zip(colours, runs.items()):
        train = training_rows(records)
        x = [row.sequences for row in train]
        cost_axes.plot(x, positive([row.cost for row in train]), color=colour, lw=1.4, label=label, gid=f"cost/{label}")
        error_axes.plot(x, [row.bit_errors for row in train], color=colour, lw=1.4, label=label,
                        gid=f"bit_errors/{label}")
        held = [check for check in of_kind(records, HeldOut) if math.isfinite(check.cost)]
        if held:
            hx = [check.sequences for check in held]
            cost_axes.plot(hx, positive([check.cost for check in held]), color=colour, ls="--", marker=".", ms=4,
                           lw=0.9, gid=f"held_out_cost/{label}")
            error_axes.plot(hx, [check.bit_errors for check in held], color=colour, ls="--", marker=".", ms=4,
                            lw=0.9, gid=f"held_out_bit_errors/{label}")
        for event in of_kind(records, LevelUp):
            for axes in (cost_axes, error_axes):
                axes.axvline(event.sequences, color=colour, ls=":", lw=1.0, gid=f"level/{label}")
            cost_axes.text(event.sequences, 0.98, f"level {event.level + 1}", color=colour, fontsize=7,
                           rotation=90, va="top", ha="center", transform=cost_axes.get_xaxis_transform(),
                           bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1))
        for event in of_kind(records, Solved):
            # The star sits on the held-out check that found the run solved, else on the training curve.
            checks = [check.cost for check in held if check.step == event.step]
            before = [row.cost for row in train if row.step <= event.step]
            cost = (checks or before or [1.0])[-1]
            cost_axes.plot([event.sequences], positive([cost]), marker="*", ms=12, color=colour,
                           markeredgecolor="black", ls="none", gid=f"solved/{label}")
        for event in of_kind(records, NanRestore) + of_kind(records, Diverged):
            sequences = max((row.sequences for row in train if row.step <= event.step), default=0)
            for axes in (cost_axes, error_axes):
                axes.axvline(sequences, color=ERROR_COLOUR, ls="-.", lw=0.8, alpha=0.7)
    log_y_axis(cost_axes)
    cost_axes.set_ylabel("cost per sequence (bits)")
    error_axes.set_ylabel("bit errors per sequence")
    error_axes.set_xlabel("sequences seen")
    error_axes.set_ylim(bottom=0)
    for axes in (cost_axes, error_axes):
        axes.xaxis.set_major_formatter(FuncFormatter(count_formatter))
        axes.grid(True, which="major", alpha=0.3)
    cost_axes.grid(True, which="minor", alpha=0.1)
    # The legend names the runs, then explains the line styles that appear.
    handles, labels = cost_axes.get_legend_handles_labels()
    every = [record for records in runs.values() for record in records]
    for kind, style, text in ((HeldOut, dict(ls="--", marker="."), "held-out check"),
                              (LevelUp, dict(ls=":"), "curriculum level"),
                              (Solved, dict(ls="none", marker="*", ms=10, markeredgecolor="black"), "solved")):
        if of_kind(every, kind):
            handles.append(Line2D([], [], color="grey", **style))
            labels.append(text)
    if len(handles) > len(runs):
        handles.insert(len(runs), Line2D([], [], color="grey", lw=1.4))
        labels.insert(len(runs), "training batches")
    cost_axes.legend(handles, labels, fontsize=8, loc="best", ncols=2 if len(runs) > 3 else 1, framealpha=0.9)


def learning_curve_figure(runs: Mapping[str, Sequence[Record]], title: str) -> Figure:
    figure = new_figure(10.0, 6.5)
    cost_axes = figure.add_subplot(2, 1, 1, label="cost")
    error_axes = figure.add_subplot(2, 1, 2, sharex=cost_axes, label="bit_errors")
    draw_learning_curves(cost_axes, error_axes, runs)
    cost_axes.tick_params(labelbottom=False)
    figure.suptitle(title, fontsize=12)
    return figure


def plot_learning_curves(runs: Mapping[str, Sequence[Record]], path: Path | str, title: str = "learning curves") -> Path:
    """Learning curves of one or more runs (`{label: metrics.jsonl records}`) written as a PNG."""
    if not runs:
        raise ValueError("plot_learning_curves needs at least one run")
    return save_figure(learning_curve_figure(runs, title), path)


# ----------------------------------------------------------------------------- generalisation


def as_runs(rows_or_runs) -> dict[str, Sequence[Mapping[str, Any]]]:
    return dict(rows_or_runs) if isinstance(rows_or_runs, Mapping) else {"": rows_or_runs}


def draw_generalisation(cost_axes, error_axes, runs: Mapping[str, Sequence[Mapping[str, Any]]], key: str,
                        xlabel: str | None = None, trained_range: tuple[int, int] | None = None) -> None:
    """Cost (log) and bit errors per sequence against the generalisation quantity, one colour per run."""
    for i, (label, rows) in enumerate(runs.items()):
        rows = sorted(rows, key=lambda row: row[key])
        x = [row[key] for row in rows]
        style = dict(color=f"C{i % 10}", marker="o", ms=5, lw=1.4, label=label or None)
        cost_axes.plot(x, positive([row["cost"] for row in rows]), gid=f"eval_cost/{label}", **style)
        error_axes.plot(x, [row["bit_errors"] for row in rows], gid=f"eval_bit_errors/{label}", **style)
    for axes in (cost_axes, error_axes):
        if trained_range is not None:
            low, high = trained_range
            axes.axvspan(low, high, color="#a1d99b", alpha=0.35, lw=0,
                         label=f"training range ({low}–{high})" if axes is cost_axes else None)
        axes.set_xlabel(xlabel or key_label(key))
        axes.set_xlim(left=0)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
    log_y_axis(cost_axes)
    cost_axes.set_ylabel("cost per sequence (bits)")
    error_axes.set_ylabel("bit errors per sequence")
    error_axes.set_ylim(bottom=0)
    if cost_axes.get_legend_handles_labels()[0]:
        cost_axes.legend(fontsize=8, loc="best")


def generalisation_figure(rows_or_runs, key: str, title: str, xlabel: str | None = None,
                          trained_range: tuple[int, int] | None = None) -> Figure:
    figure = new_figure(11.0, 4.2)
    cost_axes = figure.add_subplot(1, 2, 1, label="cost")
    error_axes = figure.add_subplot(1, 2, 2, label="bit_errors")
    draw_generalisation(cost_axes, error_axes, as_runs(rows_or_runs), key, xlabel, trained_range)
    figure.suptitle(title, fontsize=12)
    return figure


def plot_generalisation(rows_or_runs, key: str, path: Path | str, title: str = "generalisation",
                        xlabel: str | None = None, trained_range: tuple[int, int] | None = None) -> Path:
    """Cost and bit errors against `key` (eval rows, or `{label: rows}` for several runs) as a PNG;
    `trained_range` (low, high) shades the values seen in training."""
    runs = as_runs(rows_or_runs)
    if not any(runs.values()):
        raise ValueError("plot_generalisation needs at least one evaluation row")
    for rows in runs.values():
        for row in rows:
            if key not in row or "cost" not in row or "bit_errors" not in row:
                raise ValueError(f"evaluation row {row} lacks {key!r}, 'cost' or 'bit_errors'")
    return save_figure(generalisation_figure(runs, key, title, xlabel, trained_range), path)


def comparison_figure(runs: Mapping[str, Sequence[Record]], evals: Mapping[str, Sequence[Mapping[str, Any]]],
                      key: str | None, title: str, xlabel: str | None = None) -> Figure:
    """Learning curves of several runs (left) and, where they were evaluated, their generalisation (right)."""
    columns = 2 if evals and key else 1
    figure = new_figure(10.0 if columns == 1 else 15.0, 7.0)
    grid = figure.add_gridspec(2, columns, width_ratios=[3, 2] if columns == 2 else None)
    cost_axes = figure.add_subplot(grid[0, 0], label="cost")
    error_axes = figure.add_subplot(grid[1, 0], sharex=cost_axes, label="bit_errors")
    draw_learning_curves(cost_axes, error_axes, runs)
    cost_axes.tick_params(labelbottom=False)
    cost_axes.set_title("learning curves", fontsize=10)
    if columns == 2:
        gen_cost = figure.add_subplot(grid[0, 1], label="generalisation_cost")
        gen_errors = figure.add_subplot(grid[1, 1], sharex=gen_cost, label="generalisation_bit_errors")
        # Every run keeps its colour from the learning curves, evaluated or not.
        ordered = {label: evals.get(label, []) for label in runs}
        draw_generalisation(gen_cost, gen_errors, ordered, key, xlabel)
        gen_cost.tick_params(labelbottom=False)
        gen_cost.set_xlabel("")
        gen_cost.set_title("generalisation (eval.json)", fontsize=10)
        if gen_cost.get_legend() is not None:
            gen_cost.get_legend().remove()
    figure.suptitle(title, fontsize=12)
    return figure


# ----------------------------------------------------------------------------- the sweep figure


def sweep_figure(rows: Sequence[Mapping[str, Any]], curves: Mapping[str, Sequence[tuple[int, float]]],
                 searches: Sequence[Any], title: str) -> Figure:
    """The figure of an `ntm sweep`, its trials ranked best first (`rows`, as in its results table).

    Top: each trial's held-out cost against training sequences (`curves`, by trial name). Below: one
    panel per searched setting (each of `searches` has a `name`, a distribution `kind` and its candidate
    `values`), its value against time to solve (trials that did not solve drawn hollow on the dotted line
    at the top). Colour is the trial's rank in the table, dark = best.
    """
    from matplotlib import colormaps

    figure = new_figure(max(9.0, 3.4 * len(searches) + 2.5), 7.2)
    grid = figure.add_gridspec(2, len(searches), height_ratios=(1.2, 1))
    colours = colormaps["viridis"]([x / max(len(rows) - 1, 1) * 0.85 for x in range(len(rows))])
    curve_axes = figure.add_subplot(grid[0, :])
    curve_axes.set_label("held_out_cost")
    for rank, (row, colour) in enumerate(zip(rows, colours)):
        points = [(s, c) for s, c in curves.get(row["trial"], []) if c > 0]
        if not points:
            continue
        x, y = zip(*points)
        label = f"#{rank + 1} " + ", ".join(f"{s.name}={setting_text(row[s.name])}" for s in searches)
        curve_axes.plot(x, y, color=colour, lw=1.6 if rank < 3 else 0.9, label=label if rank < 8 else None,
                        marker="*" if row["solved"] else None, markevery=[len(x) - 1], markersize=10)
    log_y_axis(curve_axes)
    curve_axes.xaxis.set_major_formatter(count_formatter)
    curve_axes.set_xlabel("training sequences")
    curve_axes.set_ylabel("held-out cost (bits per sequence)")
    curve_axes.set_title("held-out cost at each check (* solved; colour: rank, dark = best)")
    if any(curves.values()):
        curve_axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="best first",
                          title_fontsize=7)

    times = [row["time_to_solve_s"] for row in rows if row["solved"]]
    top = max(times) * 1.15 if times else 1.0
    for index, search in enumerate(searches):
        panel = figure.add_subplot(grid[1, index])
        panel.set_label(f"time_to_solve/{search.name}")
        if search.kind in ("grid", "choice"):
            # The listed values, evenly spaced; trials sharing a value spread sideways so none hides another.
            labels = list(dict.fromkeys(setting_text(v) for v in search.values))
            position = {label: i for i, label in enumerate(labels)}
            shared: dict[str, int] = {}
            places = []
            for row in rows:
                label = setting_text(row[search.name])
                shared[label] = shared.get(label, 0) + 1
                places.append(position[label] + 0.07 * ((shared[label] % 5) - 2))
            panel.set_xticks(range(len(labels)), labels)
            panel.set_xlim(-0.5, len(labels) - 0.5)
        else:
            places = [float(row[search.name]) for row in rows]
            if search.kind == "loguniform":
                panel.set_xscale("log")
        for row, colour, x in zip(rows, colours, places):
            if row["solved"]:
                panel.scatter([x], [row["time_to_solve_s"]], color=colour, s=30, zorder=3)
            else:
                panel.scatter([x], [top], facecolors="none", edgecolors="#d62728", s=30, zorder=3)
        panel.axhline(top, color="#d62728", lw=0.6, ls=":")
        panel.set_ylim(0, top * 1.12)
        ticks = [tick for tick in panel.get_yticks() if 0 <= tick < top * 0.92]
        panel.set_yticks([*ticks, top], [f"{tick:g}" for tick in ticks] + ["not\nsolved"])
        panel.get_yticklabels()[-1].set_color("#d62728")
        panel.set_xlabel(f"{search.name} ({search.kind})")
        if index == 0:
            panel.set_ylabel("time to solve (s)")
    figure.suptitle(title)
    return figure
