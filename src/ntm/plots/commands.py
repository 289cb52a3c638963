"""The picture commands of the `ntm` command line: `ntm show`, `ntm compare` and `ntm report`.

`ntm.commands.cli.build_parser` calls `add_commands` with its subparsers; each handler takes the parsed
arguments and a stderr console and returns an exit status. Bad input raises ValueError, which
`ntm.commands.cli.main` prints as one line with exit status 2.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from ntm.commands.usage import stdout_console


def add_commands(commands) -> None:
    """Register show, compare and report on the `ntm` subparsers object."""
    show = commands.add_parser("show", help="draw one sample through a trained model: inputs, outputs, "
                                            "weightings, memory")
    show.add_argument("run_dir", help="a run directory written by ntm train")
    show.add_argument("--length", type=int, default=None, metavar="L",
                      help="sequence length (or item count) of the sample; default: the training maximum")
    show.add_argument("--seed", type=int, default=0, help="which sample to draw (default 0)")
    show.add_argument("-o", "--output", "--out", dest="out", default=None, metavar="FILE.png",
                      help="where the picture is written (default RUN_DIR/show-lengthL.png)")
    show.set_defaults(handler=run_show)

    compare = commands.add_parser("compare", help="learning curves and eval tables of several runs side by side")
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by ntm train")
    compare.add_argument("-o", "--output", "--out", dest="out", default="compare.png", metavar="FILE.png",
                         help="where the figure is written (default ./compare.png)")
    compare.add_argument("--labels", default=None, help="comma-separated legend labels, one per run "
                                                        "(default: the model and the settings that differ)")
    compare.set_defaults(handler=run_compare)

    report = commands.add_parser("report", help="(re)write RUN_DIR/report.md with its figures")
    report.add_argument("run_dir", help="a run directory written by ntm train")
    report.set_defaults(handler=run_report)


def run_show(args, console: Console) -> int:
    from ntm.plots.runs import show_run

    if args.seed < 0:
        raise ValueError(f"ntm show: --seed must be >= 0, got {args.seed}")
    try:
        result = show_run(args.run_dir, args.length, args.seed, args.out)
    except ValueError as error:
        raise ValueError(f"ntm show: {error}") from None
    print(f"{result.bit_errors} bit errors out of {result.scored_bits} scored bits; figure written to {result.path}")
    return 0


def run_compare(args, console: Console) -> int:
    from ntm.plots.runs import compare_runs

    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    try:
        comparison = compare_runs([Path(path) for path in args.run_dirs], args.out, labels)
    except ValueError as error:
        raise ValueError(f"ntm compare: {error}") from None
    for note in comparison.notes:
        console.print(note, style="yellow", markup=False, soft_wrap=True)
    for number, (label, path) in enumerate(comparison.run_dirs.items(), start=1):
        print(f"[{number}] {label}: {path}")
    out = stdout_console()
    for table in comparison.tables:
        out.print(table)
    print(f"figure written to {comparison.path}")
    return 0


def run_report(args, console: Console) -> int:
    from ntm.plots.runs import write_report

    try:
        path = write_report(args.run_dir)
    except ValueError as error:
        raise ValueError(f"ntm report: {error}") from None
    print(f"report written to {path}")
    return 0
