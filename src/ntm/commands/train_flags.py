"""The flags of `ntm train`, generated from the dataclasses, for `ntm train` and `ntm sweep` alike.

Every training setting and model config field is a flag: a field's metadata holds its help text, its
choices, and `flag: False` for fields that are not flags, so a new model in `ntm.models` or a new
setting needs no change here. `add_train_flags` puts the flags on a parser and records, on the
parser's defaults, the typed table of them (`TrainFlag` by destination: how each is written, what
values it takes, and whether it sets a training setting, a model option or a task option), which
`ntm sweep` reads to parse and apply its searched values. `settings_from_args` turns the parsed flags
into `TrainSettings`; a setting the library refuses is reported in the flags the user typed.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import re
import types
import typing
from typing import Any

from ntm.commands.usage import UsageError

TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
NONE_WORDS = ("none", "off")  # what an optional setting's flag takes for None
# What a flag sets: a TrainSettings field, the model itself, a model config field, a task difficulty option.
GROUPS = ("setting", "model", "model_option", "task_option")


@dataclasses.dataclass(frozen=True)
class TrainFlag:
    """One `ntm train` flag, typed: how to write it, what its values are, and what it sets."""

    dest: str  # the field (and argparse destination), e.g. "batch_size"
    option: str  # e.g. "--batch-size"
    kind: str  # "bool", "int", "float", "float-or-none", "str" or "str-or-none"
    choices: tuple[str, ...] | None = None
    group: str = "setting"  # one of GROUPS

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float", "float-or-none")

    def parse(self, text: str):
        """A value of this flag from its text; ValueError saying what the flag takes."""
        text = text.strip()
        if self.kind == "bool":
            if text.lower() in TRUE_WORDS:
                return True
            if text.lower() in FALSE_WORDS:
                return False
            raise ValueError(f"{self.option} is on or off: give true or false, not {text!r}")
        if self.kind in ("float-or-none", "str-or-none") and text.lower() in NONE_WORDS:
            return None
        if self.kind == "int":
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{self.option} takes integers, not {text!r}") from None
        if self.numeric:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{self.option} takes numbers, not {text!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"{self.option} takes finite numbers, not {text!r}")
            return value
        if self.choices and text not in self.choices:
            raise ValueError(f"{self.option} is one of {', '.join(self.choices)}, not {text!r}")
        return text


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class NoneGiven:
    """What `--clip-value none` parses to: a flag's None already means "not given" (keep the default)."""

    def __repr__(self) -> str:
        return "none"


NONE_GIVEN = NoneGiven()


def float_or_none(text: str):
    if text.lower() in NONE_WORDS:
        return NONE_GIVEN
    return float(text)


def str_or_none(text: str):
    return NONE_GIVEN if text.lower() in NONE_WORDS else text


def as_given(value):
    """A parsed flag's value as the setting takes it: `none` typed on the command line is None."""
    return None if value is NONE_GIVEN else value


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


def add_dataclass_flags(group, cls, skip=(), extra_help=None, sets: str = "setting") -> list[TrainFlag]:
    """One flag per field of `cls` (unless `skip`ped or marked `flag: False`), parsed by the field's type,
    with help and choices from the field's metadata; default None means "not given". `extra_help`
    maps a field to the text after its help (its defaults); without it, the field's default.
    Returns the flags added, typed, each with `sets` as its group."""
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
        if hint in (typing.Optional[float], typing.Optional[str]):
            help_text += " ('none' for none)"
        help_text += (extra_help or {}).get(field.name, f" (default {shown(default)})")
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        if hint is bool:
            group.add_argument(flag(field.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
            kind = "bool"
        elif hint in (int, float, str):
            group.add_argument(flag(field.name), type=hint, default=None, choices=choices, help=help_text,
                               metavar="{" + ",".join(choices) + "}" if choices else hint.__name__.upper())
            kind = hint.__name__
        else:  # int | None, float | None, str | None
            inner = typing.get_args(hint)[0]
            parse = {float: float_or_none, str: str_or_none}.get(inner, inner)
            group.add_argument(flag(field.name), type=parse, default=None,
                               metavar=field.metadata.get("metavar", inner.__name__.upper()),
                               help=help_text)
            kind = {float: "float-or-none", str: "str-or-none"}.get(inner, inner.__name__)
        added.append(TrainFlag(field.name, flag(field.name), kind, tuple(choices) if choices else None, sets))
    return added


def hint_of(hint):
    """bool, int, float, str, or `X | None` as typing.Optional[X]; None for types that are not flags."""
    if hint in (bool, int, float, str):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(inner) == 1 and inner[0] in (int, float, str):
            return typing.Optional[inner[0]]
    return None


def task_defaults(task_names: list[str], model: str) -> dict[str, Any]:
    """{task: TrainSettings.for_task(task, model)} for the tasks this model has defaults for."""
    from ntm.training import TrainSettings

    return {task: TrainSettings.for_task(task, model) for task in task_names}


def add_train_flags(parser, task: str | None = None, model: str | None = None, own_tasks: list[str] = ()) -> None:
    """The flags of `ntm train` (also used by `ntm sweep`), recorded on the parser's defaults: the field
    names of each group (`train_fields`, `model_fields` and `task_fields`, the last two with the models
    or tasks that have each) and the typed table of every flag (`train_flags`, by destination).

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
    table = [TrainFlag("model", "--model", "str", tuple(models.names()), "model")]
    shown_model = model or "ntm"
    task_names = [task] if task else tasks.names()
    settings = task_defaults(task_names, shown_model)
    training = parser.add_argument_group(f"training (defaults for {task} with --model {shown_model})" if task else
                                         f"training (defaults by task for --model {shown_model})")
    train_help = {field.name: f" (default {defaults_text({t: getattr(s, field.name) for t, s in settings.items()})})"
                  for field in dataclasses.fields(TrainSettings) if is_flag(field)}
    table += add_dataclass_flags(training, TrainSettings, extra_help=train_help)
    train_fields = [train_flag.dest for train_flag in table[1:]]

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
        else f"model (the models each flag applies to; defaults{' for ' + task if task else ' by task'})")
    seen = set(train_fields)
    for name in shown_models:
        added = add_dataclass_flags(model_group, models.get(name).config_class, seen, model_help, "model_option")
        seen.update(train_flag.dest for train_flag in added)
        table += added

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
        table.append(TrainFlag(key, flag(key), "int", None, "task_option"))
    parser.set_defaults(train_fields=train_fields, model_fields=owners, task_fields=task_owners,
                        train_flags={train_flag.dest: train_flag for train_flag in table})


def given_values(args, model: str | None = None) -> dict:
    """The training settings, model options and task options given on the command line; each model
    option must apply to `model` (default: the --model given, else ntm)."""
    values = {name: as_given(getattr(args, name)) for name in args.train_fields if getattr(args, name) is not None}
    model = model or args.model or "ntm"
    model_options, task_options = {}, {}
    for name, owners in args.model_fields.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if model not in owners:
            raise UsageError(f"ntm train: {flag(name)} does not apply to --model {model}")
        model_options[name] = as_given(value)
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


def settings_from_args(args, model: str | None = None):
    """TrainSettings from parsed `ntm train` flags: the task's defaults for `model` (default: the --model
    given, else ntm), then the flags given. A setting the library refuses is reported with the flags the
    user typed."""
    from ntm.training import TrainSettings

    from ntm import tasks

    if args.task is None:
        raise UsageError("ntm train: give a TASK (or --resume RUN_DIR)")
    tasks.task_class(args.task)  # an unknown task, or a class of one's own that breaks the contract
    model = model or args.model or "ntm"
    values = given_values(args, model)
    refuse_step_cap_with_budget(values)
    try:
        return TrainSettings.for_task(args.task, model, **values)
    except ValueError as error:
        raise UsageError(f"ntm train: {in_flag_terms(str(error), flag_fields(args))}") from None


def refuse_step_cap_with_budget(names) -> None:
    """UsageError if --max-steps is among the settings `names` together with a budget (--steps or
    --sequences), which replaces the step cap."""
    budget = [flag(name) for name in ("steps", "sequences") if name in names]
    if "max_steps" in names and budget:
        raise UsageError(f"ntm train: --max-steps has no effect with {budget[0]} (the budget replaces the step cap)")


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

