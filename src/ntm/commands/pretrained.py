"""The pretrained-model commands of the `ntm` command line: `ntm pretrained` and `ntm demo TASK`.

`ntm pretrained` prints the table of models shipped in the package with their figures;
`ntm demo TASK` draws a fresh sample of the task through the shipped model, writes the trace
picture (`ntm.plots.figures.plot_trace`) and prints its errors. `ntm.commands.cli.build_parser` calls
`add_commands(subparsers)`; each handler takes the parsed arguments and a stderr console and
returns an exit status; bad input raises ValueError, which `ntm.commands.cli.main` prints as one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from rich.console import Console
from rich.table import Table

from ntm import saving
from ntm.commands.usage import stdout_console


def add_commands(commands) -> None:
    """Register `pretrained` and `demo` on the `ntm` subparsers object."""
    listing = commands.add_parser("pretrained", help="list the pretrained models shipped with ntm and their figures")
    listing.set_defaults(handler=run_pretrained)

    demo = commands.add_parser("demo", help="draw a fresh sample through a pretrained model: trace picture and errors")
    demo.add_argument("name", metavar="TASK", help="a pretrained model (see ntm pretrained), named by its task")
    demo.add_argument("--length", type=int, default=None, metavar="L",
                      help="sequence length (or item count) of the sample; default: the training maximum")
    demo.add_argument("--seed", type=int, default=0, help="which sample to draw (default 0)")
    demo.add_argument("-o", "--output", "--out", dest="out", default=None, metavar="FILE.png",
                      help="where the picture is written (default ./demo-TASK-lengthL.png)")
    demo.set_defaults(handler=run_demo)


def eval_summary(entry: dict[str, Any]) -> str:
    """'length 10: 0, 20: 0.02, 40: 1.3' : bit errors per sequence at each evaluated value."""
    key = entry.get("eval_key", "value")
    rows = entry.get("eval_rows") or []
    if not rows:
        return "not evaluated"
    parts = [f"{row[key]}: {row['bit_errors']:.3g}" for row in rows]
    return f"{key} " + ", ".join(parts)


def pretrained_tables(index: dict[str, dict[str, Any]]) -> tuple[Table, Table]:
    """What was shipped (name, model, size, training) and its figures, as two tables that fit 80
    columns: a name is what `ntm demo NAME` takes, so it is never cut."""
    names = sorted(index)
    width = max(len(name) for name in names)
    shipped = Table(title="pretrained models: ntm.pretrained(NAME), ntm demo NAME", title_justify="left")
    shipped.add_column("name", no_wrap=True, min_width=width)
    tasks_differ = any(index[name]["task"] != name for name in names)
    if tasks_differ:
        shipped.add_column("task", overflow="fold")
    for column in ("model", "parameters", "training sequences", "training time"):
        shipped.add_column(column, justify="left" if column == "model" else "right")
    counts = {row.get("sequences") for name in names for row in index[name].get("eval_rows") or []}
    each = f"{counts.pop():,} " if len(counts) == 1 and None not in counts else ""
    figures = Table(title=f"bit errors per sequence on {each}held-out sequences per value", title_justify="left",
                    box=None, show_header=False, padding=(0, 1))
    figures.add_column("name", no_wrap=True, min_width=width)
    figures.add_column("bit errors per sequence", overflow="fold")
    for name in names:
        entry = index[name]
        cells = [name] + ([entry["task"]] if tasks_differ else [])
        shipped.add_row(*cells, entry["model"], f"{entry['parameters']:,}", f"{entry['training_sequences']:,}",
                        f"{entry['wall_time']:.1f} s")
        options = options_text(entry)
        figures.add_row(name, eval_summary(entry) + (f"; trained with {options}" if options else ""))
    return shipped, figures


def options_text(entry: dict[str, Any]) -> str:
    """'max_length=10' or '': the task options a model was trained with (its figures' difficulty)."""
    return ", ".join(f"{key}={value}" for key, value in sorted((entry.get("task_options") or {}).items()))


def run_pretrained(args, console: Console) -> int:
    index = saving.read_index()
    if not index:
        print(f"no pretrained models are shipped in this installation ({saving.PRETRAINED_ROOT})")
        return 0
    out = stdout_console()
    for table in pretrained_tables(index):
        out.print(table)
    return 0


class DemoResult(NamedTuple):
    path: Path
    key: str  # the task's generalisation quantity: "length", "items", ...
    value: int
    bit_errors: int
    scored_bits: int
    cost: float  # bits, for this one sequence


def demo(name: str, length: int | None = None, seed: int = 0, out: Path | str | None = None) -> DemoResult:
    """A fresh sample of pretrained model `name`'s task through it, drawn as a trace picture."""
    from ntm import metrics, tasks
    from ntm.plots import figures
    from ntm.plots.runs import difficulty_text, trace_model_sample, value_text

    if out is not None and Path(out).suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {str(out)!r}")
    entry = saving.pretrained_entry(name)
    task = tasks.get(entry["task"], **(entry.get("task_options") or {}))
    model = saving.pretrained(name)
    sample = trace_model_sample(model, task, length, seed)
    key = task.generalisation_key
    path = Path(out) if out is not None else Path(f"demo-{name}-{key}{sample.value}.png")
    title = (f"{entry['task']}: pretrained {entry['model']} at {value_text(task, sample.value)} "
             f"(trained on {difficulty_text(task)})")
    _, facts = figures.trace_panels(sample.batch, sample.logits, sample.trace)
    figures.plot_trace(sample.batch, sample.logits, sample.trace, title, path)
    cost = float(np.asarray(metrics.bit_cross_entropy(sample.logits, sample.batch.targets, sample.batch.mask))[0])
    return DemoResult(path, key, sample.value, int(facts["errors"].sum()), facts["scored_bits"], cost)


def run_demo(args, console: Console) -> int:
    if args.seed < 0:
        raise ValueError(f"ntm demo: --seed must be >= 0, got {args.seed}")
    try:
        result = demo(args.name, args.length, args.seed, args.out)
    except ValueError as error:
        raise ValueError(f"ntm demo: {error}") from None
    print(f"{args.name} at {result.key} {result.value}: {result.bit_errors} bit errors out of {result.scored_bits} scored bits, "
          f"cost {result.cost:.3f} bits; figure written to {result.path}")
    return 0
