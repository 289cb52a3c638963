"""The `ntm` command line: `ntm train`, `ntm eval`, and the commands other modules register.

Every training setting and model config field is a flag, generated from the dataclasses
(`ntm.commands.train_flags`). `ntm train TASK` starts from the task's own defaults
(`TrainSettings.for_task`); a flag overrides them. `ntm train --help` shows each flag's default per
task and model; `ntm train TASK [--model M] --help` shows that task's and model's own.
Bad input ends with one line on stderr and exit status 2, never a traceback, in the words the user
typed: the library's field names become the flags (`memory_slots=8` -> `--memory-slots 8`).
Tables go to stdout through `stdout_console`, which is 80 columns wide when the output is piped.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from rich.console import Console

from ntm.commands.train_flags import add_train_flags, flag, given_values, settings_from_args
from ntm.commands.usage import OneLineParser, UsageError, stdout_console

# The most seeds a race runs by default (one per core): more would buy little and tighten each certificate.
RACE_SEEDS_MAX = 8


def add_train_command_flags(train, task: str | None = None, model: str | None = None,
                            own_tasks: list[str] = ()) -> None:
    """Every flag of `ntm train`: the training, model and task flags, and the run's own."""
    train.add_argument("-h", "--help", action=TrainHelp, help="show this help; after a TASK (and --model M): "
                                                               "with that task's and model's own defaults")
    add_train_flags(train, task, model, own_tasks)
    run = train.add_argument_group("the run")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the run (or --seeds group) in RUN_DIR")
    run.add_argument("--run-dir", help="where the run is written (default runs/TASK-TIMESTAMP)")
    run.add_argument("--seeds", type=int, default=None, metavar="K",
                     help="train K seeds (seed, seed+1, ...) side by side in one compiled program (default 1; "
                          f"in a race, one per core up to {RACE_SEEDS_MAX})")
    run.add_argument("--eval-lengths", metavar="L1,L2,...",
                     help="test lengths (or item counts) of the final table (default: the task's)")
    run.add_argument("--eval-sequences", type=int, default=None, metavar="N",
                     help="held-out sequences per row of the final table, drawn with evaluation seed 0 as "
                          "ntm eval draws them (default 1000)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=run_train)


class TrainHelp(argparse.Action):
    """`-h` of `ntm train`: after a TASK (and --model M) on the command line, the help of that task and
    model, with their own defaults; otherwise every task's."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        task, model = getattr(namespace, "task", None), getattr(namespace, "model", None)
        if task is not None or model is not None:
            parser = OneLineParser(prog=parser.prog, add_help=False, description=parser.description)
            add_train_command_flags(parser, task, model)
        parser.print_help()
        parser.exit()


def version() -> str:
    from importlib import metadata

    import ntm

    try:
        installed = metadata.version("ntm")
    except metadata.PackageNotFoundError:
        installed = None
    return f"ntm {ntm.__version__}" + (f" (installed as {installed})" if installed not in (None, ntm.__version__) else "")


def build_parser(argv: list[str] = ()):
    """The `ntm` parser; a task class of one's own named in `argv` gets flags for its difficulty options."""
    from ntm import tasks

    own_tasks = tasks.named_in(list(argv))
    parser = OneLineParser(prog="ntm", description="Neural Turing Machines that train.")
    parser.add_argument("--version", action="version", version=version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = commands.add_parser("train", help="train a model on a task (or resume a run)", add_help=False,
                                description="Train a model on a task: ntm train TASK [flags]. Each task trains "
                                            "on its own defaults; ntm train TASK --help shows them.")
    add_train_command_flags(train, own_tasks=own_tasks)

    evaluate = commands.add_parser("eval", help="evaluate a trained run at several lengths; merged into eval.json",
                                   description="Evaluate the newest checkpoint of a run on held-out sequences. The "
                                               "rows are merged into RUN_DIR/eval.json: a row replaces the one of "
                                               "the same length, the others are kept.")
    evaluate.add_argument("run_dir", help="a run directory written by ntm train")
    evaluate.add_argument("--lengths", metavar="L1,L2,...",
                          help="comma-separated test lengths (or item counts); default: the task's")
    evaluate.add_argument("--sequences", type=int, default=None, metavar="N",
                          help="held-out sequences per test value (default 1000)")
    evaluate.add_argument("--seed", type=int, default=None, metavar="S",
                          help="evaluation seed: which held-out sequences are drawn (default 0, the same "
                               "sequences every time, as the training's final table; another S draws others)")
    evaluate.set_defaults(handler=run_eval)

    from ntm.commands import pretrained, reproduce
    from ntm.commands.sweep.command import add_commands as add_sweep_commands
    from ntm.plots import add_commands as add_picture_commands

    add_picture_commands(commands)
    pretrained.add_commands(commands)
    reproduce.add_commands(commands)
    add_sweep_commands(commands, own_tasks)
    return parser


def positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"ntm: {name} must be >= 1, got {value}")
    return value


def run_train(args, console: Console) -> int:
    from ntm.evaluate import EVAL_SEQUENCES, eval_table, parse_values
    from ntm.experiment import run_experiment
    from ntm.runtime import set_host_devices
    from ntm.training.settings import BUDGET_FIELDS

    eval_values = parse_values(args.eval_lengths) if args.eval_lengths else None
    sequences = positive("--eval-sequences", args.eval_sequences) or EVAL_SEQUENCES
    if args.seeds is not None:
        positive("--seeds", args.seeds)
    evaluation = dict(eval_values=eval_values, eval_sequences=sequences, console=console, progress=not args.quiet)
    for name, path in (("--resume", args.resume), ("--run-dir", args.run_dir)):
        if path is not None:
            check_directory(name, Path(path))

    if args.resume:
        values = given_values(args)
        fixed = [flag(name) for name in values if name not in BUDGET_FIELDS]
        fixed += [name for name, given in (("TASK", args.task), ("--model", args.model),
                                           ("--run-dir", args.run_dir), ("--seeds", args.seeds is not None)) if given]
        if fixed:
            raise UsageError(f"ntm train: --resume continues the saved run as it was configured; remove "
                             f"{', '.join(fixed)} (only --steps, --sequences, --max-steps, --minutes, --until-solved may change)")
        saved = resume_settings(Path(args.resume))
        set_host_devices(saved["batch_size"], saved["seeds"])  # before JAX starts: one CPU device per core
        experiment = run_experiment(run_dir=Path(args.resume), resume=True, budget=values, **evaluation)
    else:
        settings = settings_from_args(args)
        seeds = args.seeds or default_seeds(settings)
        set_host_devices(settings.batch_size, seeds)
        experiment = run_experiment(settings, run_dir=args.run_dir, seeds=seeds, **evaluation)

    out = stdout_console()
    result, best, task = experiment.result, experiment.best, experiment.conclusion.task
    settings = result.settings
    if len(result.seeds) > 1:
        out.print(seeds_table(result, task))
    when = (f"certified at step {best.solved_step} ({best.solved_sequences:,} sequences, "
            f"{best.solved_time:.1f} s)" if best.solved else f"{best.step} steps ({best.sequences:,} sequences)")
    which = f"seed {best.seed}: " if len(result.seeds) > 1 else ""
    print(f"{which}{experiment.verdict}; {when}; {best.wall_time:.1f} s of training")
    out.print(eval_table(experiment.rows, task, f"{settings.model} on {settings.task}: generalisation"))
    # `ntm eval`, `show` and `--init-from` take a seed's own directory, not a group's
    seed_dir = (f"; {'the winner' if settings.race and best.solved else 'the best seed'}: {best.run_dir}"
                if len(result.seeds) > 1 else "")
    print(f"run directory: {result.run_dir}{seed_dir} (report: {experiment.conclusion.report})")
    return 0


def default_seeds(settings) -> int:
    """Seeds of a run without --seeds: one, or in a race one per core this process may use (a core's device
    trains its seed alone, where one seed's small batch would leave the other cores idle), at most
    RACE_SEEDS_MAX (each seed's certificate gets 1/K of the allowed error)."""
    from ntm.runtime import available_cores

    return min(available_cores(), RACE_SEEDS_MAX) if settings.race else 1


def check_directory(name: str, path: Path) -> None:
    """UsageError if the directory a flag names is a file, or lies under one."""
    for candidate in (path, *path.parents):
        if candidate.is_file():
            where = "" if candidate == path else f" ({candidate} is a file)"
            raise UsageError(f"ntm train: {name} {path}{' is a file, not a directory' if not where else ''}"
                             f"{': it would lie under a file' + where if where else ''}")


def resume_settings(run_dir: Path) -> dict:
    """The batch size and seed count of a run (or group) directory, read before JAX starts."""
    from ntm.training.runs import SeedGroup

    group = SeedGroup.open(run_dir)
    return {"batch_size": group.settings[0].batch_size, "seeds": len(group)}


def seeds_table(result, task):
    from rich.table import Table

    solved = sum(r.solved for r in result.seeds)
    kind = "a race of " if result.settings.race else ""
    table = Table(title=f"{kind}{len(result.seeds)} seeds of {result.settings.model} on {result.settings.task}: "
                        f"{solved} certified solved")
    for column in ("seed", "certified", "at step", "sequences", "seconds", "cost (bits/seq)", "bit errors/seq"):
        table.add_column(column, justify="right")
    for r in result.seeds:
        status = "diverged" if r.diverged else ("yes" if r.solved else "outrun" if r.outrun else "no")
        table.add_row(str(r.seed), status, str(r.solved_step or "-"), f"{r.solved_sequences or r.sequences:,}",
                      f"{r.solved_time or r.wall_time:.1f}", f"{r.last.get('cost', float('nan')):.3f}",
                      f"{r.last.get('bit_errors', float('nan')):.3f}")
    return table


def run_eval(args, console: Console) -> int:
    from ntm.evaluate import (DEFAULT_EVAL_SEED, EVAL_FILE, EVAL_SEQUENCES, eval_table, evaluate_run, parse_values,
                              read_eval, stale_rows)

    sequences = positive("--sequences", args.sequences) or EVAL_SEQUENCES
    values = parse_values(args.lengths) if args.lengths else None
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"ntm eval: --seed must be >= 0, got {args.seed}")
    seed = DEFAULT_EVAL_SEED if args.seed is None else args.seed
    run, rows = evaluate_run(args.run_dir, values, sequences, seed)
    stdout_console().print(eval_table(rows, run.task, f"{run.settings.model} on {run.settings.task}, step {run.step}, "
                                                      f"evaluation seed {seed}"))
    saved = read_eval(args.run_dir)
    key = saved["key"]
    print(f"merged into {Path(args.run_dir) / EVAL_FILE}, which now holds {key} "
          f"{', '.join(str(row[key]) for row in saved['rows'])}")
    for step, older in stale_rows(saved, run.step).items():
        print(f"  {key} {', '.join(map(str, older))}: measured at step {step}, not the model's step {run.step} "
              f"(re-evaluate with --lengths {','.join(map(str, older))})")
    return 0


def os_error_text(error: OSError) -> str:
    """An OS error in words: 'X is a file, not a directory', or 'X: Permission denied'."""
    if error.filename is None:
        return error.strerror or str(error)
    path = Path(error.filename)
    if error.errno in (errno.EEXIST, errno.ENOTDIR):
        for candidate in (path, *path.parents):
            if candidate.is_file():
                return f"{candidate} is a file, not a directory"
    return f"{path}: {error.strerror or error}"


def main(argv: list[str] | None = None) -> int:
    from ntm.runtime import tune_malloc, tune_xla

    tune_malloc()
    tune_xla()
    console = Console(stderr=True)
    argv = sys.argv[1:] if argv is None else list(argv)
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # task classes of one's own import from here, as under `python -m`
    try:
        args = build_parser(argv).parse_args(argv)
        return args.handler(args, console)
    except (UsageError, ValueError, OSError) as error:
        text = os_error_text(error) if isinstance(error, OSError) else str(error)
        message = text.splitlines()[0] if text else type(error).__name__
        prefix = "" if isinstance(error, UsageError) or message.startswith("ntm ") else "ntm: error: "
        print(f"{prefix}{message}", file=sys.stderr)
        return 2
    except FloatingPointError as error:
        print(f"ntm: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ntm: interrupted; the last checkpoint is kept (continue with ntm train --resume RUN_DIR)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
