"""The `ntm` command line: `ntm train`, `ntm eval`, and the commands other modules register.

Every training setting and model config field is a flag, generated from the dataclasses: a field's
metadata holds its help text, its choices, and `flag: False` for fields that are not flags, so a new
model in `ntm.models` or a new setting needs no change here. `ntm train TASK` starts from the task's
own defaults (`TrainSettings.for_task`); a flag overrides them. `ntm train --help` shows each flag's
default per task and model; `ntm train TASK [--model M] --help` shows that task's and model's own.
Bad input ends with one line on stderr and exit status 2, never a traceback, in the words the user
typed: the library's field names become the flags (`memory_slots=8` -> `--memory-slots 8`).
Tables go to stdout through `stdout_console`, which is 80 columns wide when the output is piped.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import errno
import os
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from rich.console import Console


class UsageError(ValueError):
    """A bad command line: reported in one line with exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def stdout_console() -> Console:
    """The console of results and tables: the terminal's width, or 80 columns when stdout is piped
    (COLUMNS overrides both); tables are built to fit that."""
    return Console()


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def float_or_none(text: str):
    if text.lower() in ("none", "off"):
        return None
    return float(text)


def is_flag(field: dataclasses.Field) -> bool:
    return field.metadata.get("flag", True) and field.name not in ("input_size", "output_size")


def shown(value: Any) -> str:
    """A default as the user would type it: 0.003, 20000, none, on/off."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def defaults_text(per_task: dict[str, Any], exceptions: str = "{}; {}") -> str:
    """'0.003' when every task agrees, else the most common value and the tasks that differ:
    '0.003; repeat_copy 0.001' (`exceptions` formats the two parts)."""
    common = collections.Counter(shown(v) for v in per_task.values()).most_common(1)[0][0]
    others = [f"{task} {shown(value)}" for task, value in per_task.items() if shown(value) != common]
    return exceptions.format(common, ", ".join(others)) if others else common


def add_dataclass_flags(group, cls, skip=(), extra_help=None) -> list[str]:
    """One flag per field of `cls` (unless `skip`ped or marked `flag: False`), parsed by the field's type,
    with help and choices from the field's metadata; default None means "not given". `extra_help`
    maps a field to the text after its help (its defaults); without it, the field's default."""
    hints = typing.get_type_hints(cls)
    added = []
    for field in dataclasses.fields(cls):
        if field.name in skip or not is_flag(field):
            continue
        hint = hint_of(hints[field.name])
        if hint is None:
            continue
        choices = field.metadata.get("choices")
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = field.metadata.get("help", field.name.replace("_", " "))
        if hint is typing.Optional[float]:
            help_text += " ('none' for none)"
        help_text += (extra_help or {}).get(field.name, f" (default {shown(default)})")
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        if hint is bool:
            group.add_argument(flag(field.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif hint in (int, float, str):
            group.add_argument(flag(field.name), type=hint, default=None, choices=choices, help=help_text,
                               metavar="{" + ",".join(choices) + "}" if choices else hint.__name__.upper())
        else:  # int | None, float | None
            inner = typing.get_args(hint)[0]
            parse = float_or_none if inner is float else inner
            group.add_argument(flag(field.name), type=parse, default=None, metavar=inner.__name__.upper(),
                               help=help_text)
        added.append(field.name)
    return added


def hint_of(hint):
    """bool, int, float, str, or `X | None` as typing.Optional[X]; None for types that are not flags."""
    if hint in (bool, int, float, str):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(inner) == 1 and inner[0] in (int, float):
            return typing.Optional[inner[0]]
    return None


def task_defaults(task_names: list[str], model: str) -> dict[str, Any]:
    """{task: TrainSettings.for_task(task, model)} for the tasks this model has defaults for."""
    from ntm.training import TrainSettings

    return {task: TrainSettings.for_task(task, model) for task in task_names}


def add_train_flags(parser, task: str | None = None, model: str | None = None, own_tasks: list[str] = ()) -> None:
    """The flags of `ntm train` (also used by `ntm sweep`), recorded on the parser's defaults.

    The help shows each flag's default: with `task` (and `model`) those of that task and model, and
    only that model's and task's flags; without, every task's for `model` (default ntm). `own_tasks` are
    task classes of one's own named on the command line, whose difficulty options become flags too."""
    from ntm import models, tasks
    from ntm.training import TrainSettings

    own_tasks = [*own_tasks, *([task] if task and task not in tasks.names() and task not in own_tasks else [])]
    parser.add_argument("task", nargs="?", metavar="TASK",
                        help=f"the task to learn: {', '.join(tasks.names())}, or a Task class of your own as "
                             f"module:Class (e.g. my_pkg.tasks:Parity)")
    parser.add_argument("--model", choices=models.names(), default=None,
                        help=f"the model to train (default ntm; {', '.join(f'{name}: {models.get(name).description}' for name in models.names())})")
    shown_model = model or "ntm"
    task_names = [task] if task else tasks.names()
    settings = task_defaults(task_names, shown_model)
    training = parser.add_argument_group(f"training (defaults for {task} with --model {shown_model})" if task else
                                         f"training (defaults by task for --model {shown_model})")
    train_help = {field.name: f" (default {defaults_text({t: getattr(s, field.name) for t, s in settings.items()})})"
                  for field in dataclasses.fields(TrainSettings) if is_flag(field)}
    train_fields = add_dataclass_flags(training, TrainSettings, extra_help=train_help)

    owners: dict[str, list[str]] = {}
    for name in models.names():
        for field in dataclasses.fields(models.get(name).config_class):
            if is_flag(field):
                owners.setdefault(field.name, []).append(name)
    shown_models = [model] if model else models.names()
    by_field: dict[str, dict[str, list[str]]] = {}  # field -> its defaults' text -> the models with it
    for name in shown_models:
        per_model = settings if name == shown_model else task_defaults(task_names, name)
        for field in dataclasses.fields(models.get(name).config_class):
            if is_flag(field):
                values = {t: s.model_options.get(field.name, field.default) for t, s in per_model.items()}
                by_field.setdefault(field.name, {}).setdefault(defaults_text(values, "{} ({})"), []).append(name)
    model_help = {name: (f" (default {next(iter(texts))})" if model else
                         " (" + "; ".join(f"{', '.join(names)}: {text}" for text, names in texts.items()) + ")")
                  for name, texts in by_field.items()}
    model_group = parser.add_argument_group(
        f"model {model} (defaults{' for ' + task if task else ' by task'}; --model M --help: another's)" if model
        else f"model (the models each flag applies to, with their defaults{' for ' + task if task else ' by task'})")
    seen = set(train_fields)
    for name in shown_models:
        seen.update(add_dataclass_flags(model_group, models.get(name).config_class, seen, model_help))

    task_group = parser.add_argument_group(f"task difficulty (training values of {task})" if task else
                                           "task difficulty (the tasks each flag applies to, with their values)")
    task_owners: dict[str, list[str]] = {}
    for task_name in [*tasks.names(), *own_tasks]:
        for key in tasks.get(task_name).difficulty:
            task_owners.setdefault(key, []).append(task_name)
    for key, names in task_owners.items():
        values = {name: tasks.get(name, **settings[name].task_options).difficulty[key]
                  for name in names if name in settings}
        if not values:
            continue
        if task or len(names) == 1:
            what = tasks.get(task or names[0]).difficulty_help(key)
        else:  # one flag, several tasks: what it sets for each is in `ntm train TASK --help`
            what = f"{'minimum' if key.startswith('min_') else 'maximum'} {key[4:]} in training"
        what += f" (default {values[task]})" if task else f" ({', '.join(f'{n} {v}' for n, v in values.items())})"
        task_group.add_argument(flag(key), type=int, default=None, metavar="INT", help=what)
    parser.set_defaults(train_fields=train_fields, model_fields=owners, task_fields=task_owners)


def add_train_command_flags(train, task: str | None = None, model: str | None = None,
                            own_tasks: list[str] = ()) -> None:
    """Every flag of `ntm train`: the training, model and task flags, and the run's own."""
    train.add_argument("-h", "--help", action=TrainHelp, help="show this help; after a TASK (and --model M): "
                                                               "with that task's and model's own defaults")
    add_train_flags(train, task, model, own_tasks)
    run = train.add_argument_group("the run")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the run (or --seeds group) in RUN_DIR")
    run.add_argument("--run-dir", help="where the run is written (default runs/TASK-TIMESTAMP)")
    run.add_argument("--seeds", type=int, default=1, metavar="K",
                     help="train K seeds (seed, seed+1, ...) side by side in one compiled program (default 1)")
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

    from ntm.commands import pretrained, reproduce, sweep
    from ntm.plots import add_commands as add_picture_commands

    add_picture_commands(commands)
    pretrained.add_commands(commands)
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
    """TrainSettings from parsed `ntm train` flags: the task's defaults, then the flags given. A setting
    the library refuses is reported with the flags the user typed."""
    from ntm.training import TrainSettings

    from ntm import tasks

    if args.task is None:
        raise UsageError("ntm train: give a TASK (or --resume RUN_DIR)")
    tasks.task_class(args.task)  # an unknown task, or a class of one's own that breaks the contract
    values = given_values(args)
    budget = [flag(name) for name in ("steps", "sequences") if name in values]
    if "max_steps" in values and budget:
        raise UsageError(f"ntm train: --max-steps has no effect with {budget[0]} (the budget replaces the step cap)")
    try:
        return TrainSettings.for_task(args.task, args.model or "ntm", **values)
    except ValueError as error:
        raise UsageError(f"ntm train: {in_flag_terms(str(error), flag_fields(args))}") from None


def flag_fields(args) -> set[str]:
    """The field names of every `ntm train` flag, as parsed into `args`."""
    return {*args.train_fields, *args.model_fields, *args.task_fields, "model"}


def in_flag_terms(message: str, fields: set[str]) -> str:
    """A library message in the words of the command line: `memory_slots=8` -> `--memory-slots 8`,
    `controller='lstm'` -> `--controller lstm`, and a field named with an underscore (or first, as the
    subject) -> its flag. Plain words that happen to be field names (steps, sequences) stay words."""
    def with_value(match) -> str:
        name, value = match.group(1), match.group(3) if match.group(3) is not None else match.group(4)
        if value in ("True", "False"):  # a BooleanOptionalAction flag
            return flag(name) if value == "True" else "--no-" + flag(name)[2:]
        return f"{flag(name)} {value}"

    names = "|".join(sorted(map(re.escape, fields), key=len, reverse=True))
    message = re.sub(rf"(?<![\w-])({names})=('([^']*)'|([^\s,;)]+))", with_value, message)
    message = re.sub(rf"(?<![\w-])({names})(?![\w=-])",
                     lambda m: flag(m.group(1)) if "_" in m.group(1) or m.start() == 0 else m.group(1), message)
    return message


def settings_from_argv(argv: list[str]):
    """TrainSettings from `ntm train` arguments (without the word `train`), e.g. for `ntm sweep`."""
    from ntm import tasks

    parser = OneLineParser(prog="ntm train")
    add_train_flags(parser, own_tasks=tasks.named_in(argv))
    return settings_from_args(parser.parse_args(argv))


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
    positive("--seeds", args.seeds)
    evaluation = dict(eval_values=eval_values, eval_sequences=sequences, console=console, progress=not args.quiet)
    for name, path in (("--resume", args.resume), ("--run-dir", args.run_dir)):
        if path is not None:
            check_directory(name, Path(path))

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
        experiment = run_experiment(run_dir=Path(args.resume), resume=True, budget=values, **evaluation)
    else:
        settings = settings_from_args(args)
        set_host_devices(settings.batch_size, args.seeds)
        experiment = run_experiment(settings, run_dir=args.run_dir, seeds=args.seeds, **evaluation)

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
    print(f"run directory: {result.run_dir} (report: {experiment.conclusion.report})")
    return 0


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
    table = Table(title=f"{len(result.seeds)} seeds of {result.settings.model} on {result.settings.task}: "
                        f"{solved} certified solved")
    for column in ("seed", "certified", "at step", "sequences", "seconds", "cost (bits/seq)", "bit errors/seq"):
        table.add_column(column, justify="right")
    for r in result.seeds:
        status = "diverged" if r.diverged else ("yes" if r.solved else "no")
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
