"""The `ntm` command line: `ntm train`, `ntm eval` (and the picture commands registered by plots).

Every model config field and every training setting is a flag, generated from the dataclasses
so that a new model in `ntm.models` or a new task option needs no change here. Bad input ends
with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from pathlib import Path

from rich.console import Console

from ntm.config import ACTIVATIONS, CONTROLLERS, MEMORY_INITS

NOT_FLAGS = {"input_size", "output_size"}
TRAIN_FLAGS_EXCLUDED = {"task", "model", "model_options", "task_options"}
BUDGET_FIELDS = {"steps", "sequences", "until_solved", "max_steps"}
FLAG_CHOICES = {"optimizer": ("adam", "rmsprop"), "controller": CONTROLLERS, "memory_init": MEMORY_INITS,
                "controller_activation": ACTIVATIONS}


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


def add_dataclass_flags(group, cls, skip, help_texts=None, choices=None):
    """One flag per dataclass field, parsed by the field's type, with default None (= not given)."""
    hints = typing.get_type_hints(cls)
    added = []
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        hint = hints[field.name]
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = (help_texts or {}).get(field.name, f"default {default}")
        options = (choices or {}).get(field.name)
        if hint is bool:
            group.add_argument(flag(field.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif hint in (int, float, str):
            group.add_argument(flag(field.name), type=hint, default=None, choices=options,
                               metavar="{" + ",".join(options) + "}" if options else hint.__name__.upper(),
                               help=help_text)
        elif typing.get_origin(hint) in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(hint) if a is not type(None)][0]
            parse = float_or_none if inner is float else inner
            group.add_argument(flag(field.name), type=parse, default=None, metavar=inner.__name__.upper(),
                               help=help_text + " ('none' for none)" if inner is float else help_text)
        else:
            continue
        added.append(field.name)
    return added


def build_parser():
    from ntm import models, tasks
    from ntm.train import TrainSettings

    parser = OneLineParser(prog="ntm", description="Neural Turing Machines that train.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = commands.add_parser("train", help="train a model on a task (or resume a run)")
    train.add_argument("task", nargs="?", choices=tasks.names(), help="the task to learn")
    train.add_argument("--model", choices=models.names(), default=None, help="default ntm")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    train.add_argument("--run-dir", help="where the run is written (default runs/TASK-TIMESTAMP)")
    train.add_argument("--eval-lengths", help="test lengths (or item counts) for the final table")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--seeds", type=int, default=1, metavar="K",
                       help="train K seeds (seed, seed+1, ...) at once in one vmapped program (default 1)")
    training = train.add_argument_group("training")
    train_fields = add_dataclass_flags(training, TrainSettings, TRAIN_FLAGS_EXCLUDED, choices=FLAG_CHOICES)
    model_group = train.add_argument_group("model (each flag applies to the models named in its help)")
    model_fields: dict[str, dict[str, object]] = {}  # field -> {model: default}
    for name in models.names():
        for field in dataclasses.fields(models.get(name).config_class):
            if field.name not in NOT_FLAGS:
                model_fields.setdefault(field.name, {})[name] = field.default
    model_help = {field: "default " + ", ".join(f"{d} for {m}" for m, d in owners.items())
                  for field, owners in model_fields.items()}
    seen = set(train_fields)
    for name in models.names():
        added = add_dataclass_flags(model_group, models.get(name).config_class, NOT_FLAGS | seen, model_help,
                                    FLAG_CHOICES)
        seen.update(added)
    task_group = train.add_argument_group("task difficulty (defaults: the paper's training values)")
    task_fields: dict[str, set[str]] = {}
    for task_name in tasks.names():
        for key in tasks.get(task_name).difficulty:
            if key not in task_fields:
                task_group.add_argument(flag(key), type=int, default=None, metavar="INT")
            task_fields.setdefault(key, set()).add(task_name)
    train.set_defaults(train_fields=train_fields, model_fields=model_fields, task_fields=task_fields)

    evaluate = commands.add_parser("eval", help="evaluate a trained run at several lengths")
    evaluate.add_argument("run_dir", help="a run directory written by ntm train")
    evaluate.add_argument("--lengths", help="comma-separated test lengths (or item counts); default: the task's")
    evaluate.add_argument("--batch-size", type=int, default=64, help="sequences per test length (default 64)")

    try:
        from ntm import plots
    except ImportError:
        plots = None
    if plots is not None and hasattr(plots, "add_commands"):
        plots.add_commands(commands)
    return parser


def settings_from_args(args):
    """TrainSettings from parsed flags; UsageError for flags that do not fit the model or task."""
    from ntm.train import TrainSettings

    model = args.model or "ntm"
    values = {name: getattr(args, name) for name in args.train_fields if getattr(args, name) is not None}
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
        if args.task not in owners:
            raise UsageError(f"ntm train: {flag(name)} does not apply to task {args.task}")
        task_options[name] = value
    return TrainSettings(task=args.task, model=model, model_options=model_options, task_options=task_options, **values)


def run_train(args, console: Console) -> int:
    from ntm.evaluate import eval_table, evaluate_run, parse_values
    from ntm.plots import write_report
    from ntm.train import train

    eval_values = parse_values(args.eval_lengths) if args.eval_lengths else None
    if args.resume:
        given = [name for name in args.train_fields if getattr(args, name) is not None and name not in BUDGET_FIELDS]
        given += [name for name in list(args.model_fields) + list(args.task_fields) if getattr(args, name, None) is not None]
        if args.task or args.model or args.run_dir or given:
            names = ([args.task] if args.task else []) + [flag(n) for n in given]
            names += ["--model"] if args.model else []
            names += ["--run-dir"] if args.run_dir else []
            raise UsageError(f"ntm train: --resume continues the saved run as it was configured; "
                             f"remove {', '.join(names)} (only --steps, --sequences, --max-steps, --until-solved may change)")
        budget = {name: getattr(args, name) for name in BUDGET_FIELDS if getattr(args, name) is not None}
        result = train(run_dir=Path(args.resume), resume=True, budget=budget, console=console, progress=not args.quiet)
    else:
        if args.task is None:
            raise UsageError("ntm train: give a TASK (or --resume RUN_DIR)")
        if args.seeds < 1:
            raise UsageError(f"ntm train: --seeds must be >= 1, got {args.seeds}")
        settings = settings_from_args(args)
        if args.seeds > 1:
            return run_train_seeds(args, settings, console, eval_values)
        result = train(settings, run_dir=args.run_dir, console=console, progress=not args.quiet)
    status = "solved" if result.solved else "not solved"
    out = Console()
    level = f" (curriculum level {result.level + 1})" if result.settings.curriculum else ""
    out.print(f"{status} after {result.step} steps, {result.sequences} sequences, {result.wall_time:.1f} s "
              f"of training{level}; last cost {result.last.get('cost', float('nan')):.3f} bits/seq, "
              f"{result.last.get('bit_errors', float('nan')):.3f} bit errors/seq")
    run, rows = evaluate_run(result.run_dir, eval_values)
    out.print(eval_table(rows, run.task.generalisation_key, f"{run.settings.model} on {run.settings.task}: generalisation"))
    report = write_report(result.run_dir, rows)
    out.print(f"run directory: {result.run_dir} (report: {report})")
    return 0


def run_train_seeds(args, settings, console: Console, eval_values) -> int:
    from ntm.evaluate import eval_table, evaluate_run
    from ntm.multiseed import seeds_table, train_seeds
    from ntm.plots import write_report

    if args.resume:
        raise UsageError("ntm train: --seeds cannot be combined with --resume; resume one seed's directory instead")
    results = train_seeds(settings, args.seeds, run_dir=args.run_dir, console=console, progress=not args.quiet)
    out = Console()
    solved = [r for r in results if r.solved]
    out.print(seeds_table(results, f"{args.seeds} seeds of {settings.model} on {settings.task}: {len(solved)} solved"))
    best = min(solved, key=lambda r: r.solved_at_step) if solved else min(
        results, key=lambda r: r.last.get("cost", float("inf")))
    run, rows = evaluate_run(best.run_dir, eval_values)
    out.print(eval_table(rows, run.task.generalisation_key,
                         f"seed {best.seed} ({'first solved' if solved else 'lowest cost'}): generalisation"))
    report = write_report(best.run_dir, rows)
    out.print(f"run directory: {results[0].run_dir.parent} (report of seed {best.seed}: {report})")
    return 0


def run_eval(args, console: Console) -> int:
    from ntm.evaluate import eval_table, evaluate_run, parse_values

    if args.batch_size < 1:
        raise UsageError(f"ntm eval: --batch-size must be >= 1, got {args.batch_size}")
    values = parse_values(args.lengths) if args.lengths else None
    run, rows = evaluate_run(args.run_dir, values, args.batch_size)
    out = Console()
    out.print(eval_table(rows, run.task.generalisation_key,
                         f"{run.settings.model} on {run.settings.task}, step {run.step}"))
    out.print(f"written to {Path(args.run_dir) / 'eval.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from ntm.runtime import tune_malloc, tune_xla

    tune_malloc()
    tune_xla()
    console = Console(stderr=True)
    try:
        args = build_parser().parse_args(argv)
        if args.command == "train":
            return run_train(args, console)
        if args.command == "eval":
            return run_eval(args, console)
        return args.handler(args, console)
    except (UsageError, ValueError, FileNotFoundError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        prefix = "" if isinstance(error, UsageError) else "ntm: error: "
        print(f"{prefix}{message}", file=sys.stderr)
        return 2
    except FloatingPointError as error:
        print(f"ntm: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ntm: interrupted; the last checkpoint is kept (continue with ntm train --resume RUN_DIR)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
