"""Pictures of what a trained machine does, and a report for every run.

    from ntm import plots
    plots.plot_trace(batch, logits, trace, "copy: ntm at length 20", "trace.png")
    plots.show_run("runs/copy-...", length=30)       # one traced sample of a run, as a PNG
    plots.compare_runs([run_a, run_b], "compare.png") # learning curves and eval tables together
    plots.write_report("runs/copy-...")              # report.md with its figures

`ntm.plots.figures` holds the pure functions (arrays in, PNG out); `ntm.plots.runs` reads run
directories; `ntm.plots.commands` adds `ntm show`, `ntm compare` and `ntm report` to the CLI.
"""

from ntm.plots.commands import add_commands
from ntm.plots.figures import (
    learning_curve_figure,
    plot_generalisation,
    plot_learning_curves,
    plot_trace,
    trace_figure,
    trace_panels,
)
from ntm.plots.runs import compare_runs, show_run, trace_sample, write_report

__all__ = [
    "add_commands",
    "compare_runs",
    "learning_curve_figure",
    "plot_generalisation",
    "plot_learning_curves",
    "plot_trace",
    "show_run",
    "trace_figure",
    "trace_panels",
    "trace_sample",
    "write_report",
]
