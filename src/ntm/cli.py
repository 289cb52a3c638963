"""The `ntm` command line: `ntm train`, `ntm eval`, and the commands other modules register.

Every training setting and model config field is a flag, generated from the dataclasses: a field's
metadata holds its help text, its choices, and `flag: False` for fields that are not flags, so a new
model in `ntm.models` or a new setting needs no change here. `ntm train TASK` starts from the task's
own defaults (`TrainSettings.for_task`); a flag overrides them. Bad input ends with one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing
from pathlib import Path

from rich.console import Console


class UsageError(ValueError):
    """A bad command line: reported in one line with exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def float_or_none(text: str):
    if text.lower() in ("none", "off"):
        return None
    return float(text)


def is_flag(field: dataclasses.Field) -> bool:
    return field.metadata.get("flag", True) and field.name not in ("input_size", "output_size")


def add_dataclass_flags(group, cls, skip=(), extra_help=None) -> list[str]:
    """One flag per field of `cls` (unless `skip`ped or marked `flag: False`), parsed by the field's type,
    with help and choices from the field's metadata; default None means "not given"."""
    hints = typing.get_type_hints(cls)
    added = []
    for field in dataclasses.fields(cls):
        if field.name in skip or not is_flag(field):
            continue
        hint = hints[field.name]
        choices = field.metadata.get("choices")
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = field.metadata.get("help", field.name.replace("_", " "))
        help_text += (extra_help or {}).get(field.name, f" (default {default})")
        if hint is bool:
            group.add_argument(flag(field.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif hint in (int, float, str):
            group.add_argument(flag(field.name), type=hint, default=None, choices=choices, help=help_text,
                               metavar="{" + ",".join(choices) + "}" if choices else hint.__name__.upper())
        elif typing.get_origin(hint) in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(hint) if a is not type(None)][0]
            parse = float_or_none if inner is float else inner
            group.add_argument(flag(field.name), type=parse, default=None, metavar=inner.__name__.upper(),
                               help=help_text + (" ('none' for none)" if inner is float else ""))
        else:
            continue
        added.append(field.name)
    return added


def add_train_flags(parser, own_tasks: list[str] = ()) -> None:
    """The flags of `ntm train` (also used by `ntm sweep`), recorded on the parser's defaults; `own_tasks`
    are task classes of one's own named on the command line, whose difficulty options become flags too."""
    from ntm import models, tasks
    from ntm.training import TrainSettings

    parser.add_argument("task", nargs="?", metavar="TASK",
                        help=f"the task to learn: {', '.join(tasks.names())}, or a Task class of your own as "
                             f"module:Class (e.g. my_pkg.tasks:Parity)")
    parser.add_argument("--model", choices=models.names(), default=None, help="the model to train (default ntm)")
    training = parser.add_argument_group("training (defaults: the task's own, see README)")
    train_fields = add_dataclass_flags(training, TrainSettings, extra_help={})
    model_group = parser.add_argument_group("model (each flag applies to the models named in its help)")
    owners: dict[str, list[str]] = {}
    for name in models.names():
        for field in dataclasses.fields(models.get(name).config_class):
            if is_flag(field):
                owners.setdefault(field.name, []).append(name)
    model_help = {field: f" ({', '.join(names)})" for field, names in owners.items()}
    seen = set(train_fields)
    for name in models.names():
        seen.update(add_dataclass_flags(model_group, models.get(name).config_class, seen, model_help))
    task_group = parser.add_argument_group("task difficulty (defaults: the paper's training values)")
    task_owners: dict[str, list[str]] = {}
    for task_name in [*tasks.names(), *own_tasks]:
        for key in tasks.get(task_name).difficulty:
            if key not in task_owners:
                task_group.add_argument(flag(key), type=int, default=None, metavar="INT")
            task_owners.setdefault(key, []).append(task_name)
    parser.set_defaults(train_fields=train_fields, model_fields=owners, task_fields=task_owners)


def build_parser(argv: list[str] = ()):
    """The `ntm` parser; a task class of one's own named in `argv` gets flags for its difficulty options."""
    from ntm import tasks

    own_tasks = tasks.named_in(list(argv))
    parser = OneLineParser(prog="ntm", description="Neural Turing Machines that train.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = commands.add_parser("train", help="train a model on a task (or resume a run)")
    add_train_flags(train, own_tasks)
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run (or --seeds group) in RUN_DIR")
    train.add_argument("--run-dir", help="where the run is written (default runs/TASK-TIMESTAMP)")
    train.add_argument("--seeds", type=int, default=1, metavar="K",
                       help="train K seeds (seed, seed+1, ...) side by side in one compiled program (default 1)")
    train.add_argument("--eval-lengths", help="test lengths (or item counts) of the final table")
    train.add_argument("--eval-sequences", type=int, default=None, metavar="N",
                       help="fresh sequences per row of the final table (default 1000)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser("eval", help="evaluate a trained run at several lengths")
    evaluate.add_argument("run_dir", help="a run directory written by ntm train")
    evaluate.add_argument("--lengths", help="comma-separated test lengths (or item counts); default: the task's")
    evaluate.add_argument("--sequences", type=int, default=None, metavar="N",
                          help="fresh sequences per test value (default 1000)")
    evaluate.set_defaults(handler=run_eval)

    from ntm import pretrained_cli, reproduce, sweep
    from ntm.plots import add_commands as add_picture_commands

    add_picture_commands(commands)
    pretrained_cli.add_commands(commands)
    reproduce.add_commands(commands)
    sweep.add_commands(commands, own_tasks)
    return parser


def given_values(args) -> dict:
    """The training settings, model options and task options given on the command line."""
    values = {name: getattr(args, name) for name in args.train_fields if getattr(args, name) is not None}
    model = args.model or "ntm"
    model_options, task_options = {}, {}
    for name, owners in args.model_fields.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if model not in owners:
            raise UsageError(f"ntm train: {flag(name)} does not apply to --model {model}")
        model_options[name] = value
    for name, owners in args.task_fields.items():
        value = getattr(args, name)
        if value is None:
            continue
        if args.task is not None and args.task not in owners:
            raise UsageError(f"ntm train: {flag(name)} does not apply to task {args.task}")
        task_options[name] = value
    if model_options:
        values["model_options"] = model_options
    if task_options:
        values["task_options"] = task_options
    return values


def settings_from_args(args):
    """TrainSettings from parsed `ntm train` flags: the task's defaults, then the flags given."""
    from ntm import tasks
    from ntm.training import TrainSettings

    if args.task is None:
        raise UsageError("ntm train: give a TASK (or --resume RUN_DIR)")
    tasks.task_class(args.task)  # an unknown task, or a class of one's own that breaks the contract
    return TrainSettings.for_task(args.task, args.model or "ntm", **given_values(args))


def settings_from_argv(argv: list[str]):
    """TrainSettings from `ntm train` arguments (without the word `train`), e.g. for `ntm sweep`."""
    from ntm import tasks

    parser = OneLineParser(prog="ntm train")
    add_train_flags(parser, tasks.named_in(argv))
    return settings_from_args(parser.parse_args(argv))


def positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"ntm: {name} must be >= 1, got {value}")
    return value


def run_train(args, console: Console) -> int:
    from ntm import tasks
    from ntm.evaluate import EVAL_SEQUENCES, eval_table, evaluate_run, parse_values, verdict_text
    from ntm.plots import write_report
    from ntm.training import train
    from ntm.training.settings import BUDGET_FIELDS

    eval_values = parse_values(args.eval_lengths) if args.eval_lengths else None
    sequences = positive("--eval-sequences", args.eval_sequences) or EVAL_SEQUENCES
    positive("--seeds", args.seeds)
    from ntm.runtime import set_host_devices

    if args.resume:
        values = given_values(args)
        fixed = [flag(name) for name in values if name not in BUDGET_FIELDS]
        fixed += [name for name, given in (("TASK", args.task), ("--model", args.model),
                                           ("--run-dir", args.run_dir), ("--seeds", args.seeds != 1)) if given]
        if fixed:
            raise UsageError(f"ntm train: --resume continues the saved run as it was configured; remove "
                             f"{', '.join(fixed)} (only --steps, --sequences, --max-steps, --minutes, --until-solved may change)")
        saved = resume_settings(Path(args.resume))
        set_host_devices(saved["batch_size"], saved["seeds"])  # before JAX starts: one CPU device per core
        result = train(run_dir=Path(args.resume), resume=True, budget=values, console=console,
                       progress=not args.quiet)
    else:
        settings = settings_from_args(args)
        set_host_devices(settings.batch_size, args.seeds)
        result = train(settings, run_dir=args.run_dir, seeds=args.seeds, console=console, progress=not args.quiet)

    out = Console()
    settings = result.settings
    task = tasks.get(settings.task, **settings.task_options)
    best = min(result.seeds, key=lambda r: (not r.solved, r.solved_step or 0,
                                            r.last.get("cost", float("inf")) if r.last else float("inf")))
    if len(result.seeds) > 1:
        out.print(seeds_table(result, task))
    run, rows = evaluate_run(best.run_dir, eval_values, sequences)
    _, verdict = verdict_text(best.solved, rows, task)
    when = (f"held-out check passed at step {best.solved_step} ({best.solved_sequences:,} sequences, "
            f"{best.solved_time:.1f} s)" if best.solved else f"{best.step} steps ({best.sequences:,} sequences)")
    which = f"seed {best.seed}: " if len(result.seeds) > 1 else ""
    out.print(f"{which}{verdict}: {when}; {best.wall_time:.1f} s of training")
    out.print(eval_table(rows, task, f"{settings.model} on {settings.task}: generalisation (* outside training)"))
    report = write_report(best.run_dir, rows)
    out.print(f"run directory: {result.run_dir} (report: {report})")
    return 0


def resume_settings(run_dir: Path) -> dict:
    """The batch size and seed count of a run (or group) directory, read before JAX starts."""
    from ntm.rundir import GROUP_FILE, read_json, read_run_config

    group = run_dir / GROUP_FILE
    seeds = read_json(group)["seeds"] if group.is_file() else [None]
    first = run_dir / f"seed-{seeds[0]}" if group.is_file() else run_dir
    return {"batch_size": read_run_config(first)["settings"]["batch_size"], "seeds": len(seeds)}


def seeds_table(result, task):
    from rich.table import Table

    solved = sum(r.solved for r in result.seeds)
    table = Table(title=f"{len(result.seeds)} seeds of {result.settings.model} on {result.settings.task}: "
                        f"{solved} passed the held-out check")
    for column in ("seed", "held-out check", "at step", "sequences", "seconds", "cost (bits/seq)", "bit errors/seq"):
        table.add_column(column, justify="right")
    for r in result.seeds:
        status = "diverged" if r.diverged else ("passed" if r.solved else "no")
        table.add_row(str(r.seed), status, str(r.solved_step or "-"), f"{r.solved_sequences or r.sequences:,}",
                      f"{r.solved_time or r.wall_time:.1f}", f"{r.last.get('cost', float('nan')):.3f}",
                      f"{r.last.get('bit_errors', float('nan')):.3f}")
    return table


def run_eval(args, console: Console) -> int:
    from ntm.evaluate import EVAL_SEQUENCES, eval_table, evaluate_run, parse_values

    sequences = positive("--sequences", args.sequences) or EVAL_SEQUENCES
    values = parse_values(args.lengths) if args.lengths else None
    run, rows = evaluate_run(args.run_dir, values, sequences)
    out = Console()
    out.print(eval_table(rows, run.task, f"{run.settings.model} on {run.settings.task}, step {run.step}"))
    out.print(f"written to {Path(args.run_dir) / 'eval.json'}")
    return 0


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
    except (UsageError, ValueError, FileNotFoundError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        prefix = "" if isinstance(error, UsageError) else "ntm: error: "
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
