"""The search space of `ntm sweep`: each `--search FLAG=DISTRIBUTION` typed, and every trial's settings.

A trial's settings are typed from end to end: its base is what `ntm train` makes of the sweep's fixed
flags (the task's defaults for the trial's model, then the flags given), and the trial's searched
values (Ray Tune's `config`, by flag destination) go in with `dataclasses.replace`, so `TrainSettings`
checks them as it checks any settings. A searched `--model` has one base per model, since each model
has its own defaults. `check_space` builds every combination of the candidates before Ray starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
from typing import Any, Mapping

from ntm.commands.sweep import usage_error
from ntm.commands.train_flags import TrainFlag, in_flag_terms, refuse_step_cap_with_budget, settings_from_args
from ntm.commands.usage import UsageError
from ntm.training.settings import TrainSettings

KINDS = ("loguniform", "uniform", "choice", "grid")
# What population-based training may change in a running trial: training settings that the model, the
# optimizer state's shapes and the data's meaning do not depend on. Other searched flags are drawn once
# per trial (and copied with the run a trial continues).
PBT_MUTABLE = ("lr", "grad_clip", "replay_share")
# A bound on the combinations `check_space` builds, so that a huge space is not checked for ever.
CHECKED_COMBINATIONS = 4096


@dataclasses.dataclass(frozen=True)
class Search:
    """One `--search FLAG=DISTRIBUTION`: the flag, the kind of distribution, and its typed values."""

    text: str
    flag: TrainFlag
    kind: str
    values: tuple  # (low, high) for loguniform and uniform, else the values to choose from

    def domain(self):
        """The Ray Tune search space of this flag."""
        from ray import tune

        if self.kind == "grid":
            return tune.grid_search(list(self.values))
        if self.kind == "choice":
            return tune.choice(list(self.values))
        low, high = self.values
        if self.flag.kind == "int":  # randint's upper bound is exclusive; ours is inclusive
            return (tune.lograndint if self.kind == "loguniform" else tune.randint)(low, high + 1)
        return (tune.loguniform if self.kind == "loguniform" else tune.uniform)(low, high)

    @property
    def name(self) -> str:
        return self.flag.option[2:]


def parse_search(text: str, flags: Mapping[str, TrainFlag]) -> Search:
    """`FLAG=KIND:...` into a Search; a UsageError (one line) for anything malformed."""
    name, equals, spec = text.partition("=")
    if not equals or not name.strip() or not spec.strip():
        raise usage_error(f"--search {text!r}: write FLAG=DISTRIBUTION, e.g. lr=loguniform:1e-4:1e-2")
    dest = name.strip().lstrip("-").replace("-", "_")
    if dest not in flags:
        raise usage_error(f"--search {text!r}: {name.strip()!r} is not an ntm train flag (see ntm train --help)")
    train_flag = flags[dest]
    kind, colon, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS or not colon:
        raise usage_error(f"--search {text!r}: the distribution is one of loguniform:LOW:HIGH, uniform:LOW:HIGH, "
                          f"choice:A,B,... or grid:A,B,...")
    try:
        if kind in ("loguniform", "uniform"):
            if not train_flag.numeric:
                raise ValueError(f"{train_flag.option} is not a number; use choice or grid")
            ends = rest.split(":")
            if len(ends) != 2:
                raise ValueError(f"{kind} takes LOW:HIGH")
            low, high = (train_flag.parse(end) for end in ends)
            if low is None or high is None:
                raise ValueError(f"{kind} takes numbers for LOW and HIGH")
            if not low < high:
                raise ValueError(f"LOW must be below HIGH, got {low} and {high}")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform needs LOW > 0, got {low}")
            values = (low, high)
        else:
            words = rest.split(",")
            if any(not word.strip() for word in words):
                raise ValueError(f"{kind} takes values separated by commas, e.g. {kind}:4,8,16")
            values = tuple(train_flag.parse(word) for word in words)
    except ValueError as error:
        raise usage_error(f"--search {text!r}: {error}") from None
    return Search(text, train_flag, kind, values)


def parse_searches(texts: list[str], flags: Mapping[str, TrainFlag], fixed: set[str] = frozenset()) -> list[Search]:
    """Every --search, checked against each other and against the flags `fixed` (by destination)."""
    searches, seen = [], set()
    for text in texts:
        search = parse_search(text, flags)
        if search.flag.dest in seen:
            raise usage_error(f"{search.flag.option} is searched twice; give one --search per flag")
        if search.flag.dest in fixed:
            raise usage_error(f"{search.flag.option} is both fixed and searched; drop one of them")
        seen.add(search.flag.dest)
        searches.append(search)
    return searches


def mutated(searches: list[Search]) -> list[Search]:
    """The searches that population-based training perturbs."""
    return [search for search in searches if search.flag.dest in PBT_MUTABLE]


def check_population(searches: list[Search]) -> None:
    """`--scheduler pbt` needs a searched flag it may perturb, drawn from a distribution (not a grid)."""
    perturbed = mutated(searches)
    if not perturbed:
        names = ", ".join(name.replace("_", "-") for name in PBT_MUTABLE)
        raise usage_error(f"--scheduler pbt perturbs {names} in running trials; search at least one of them")
    for search in perturbed:
        if search.kind == "grid":
            raise usage_error(f"--scheduler pbt perturbs {search.name}: give it as loguniform, uniform or choice, "
                              f"not grid (the population is --samples trials)")


def trial_settings(bases: Mapping[str, TrainSettings], config: Mapping[str, Any],
                   flags: Mapping[str, TrainFlag]) -> TrainSettings:
    """One trial's settings: the base of its model (`bases`, by model name; the one base when the model is
    not searched) with the trial's searched values (`config`, by flag destination) put in. ValueError
    (from `TrainSettings`) for a value the settings refuse."""
    base = bases[config["model"]] if "model" in config else next(iter(bases.values()))
    changes: dict[str, dict[str, Any]] = {"setting": {}, "model_option": {}, "task_option": {}}
    for dest, value in config.items():
        if flags[dest].group != "model":
            changes[flags[dest].group][dest] = value
    return dataclasses.replace(base, **changes["setting"],
                               model_options={**base.model_options, **changes["model_option"]},
                               task_options={**base.task_options, **changes["task_option"]})


def check_settings(settings: TrainSettings) -> None:
    """Build the task and the model config of `settings` (not the model), so bad values fail before Ray starts."""
    from ntm import tasks
    from ntm.training.runs import model_config

    model_config(settings, tasks.get(settings.task, **settings.task_options))


def check_space(args: argparse.Namespace, searches: list[Search], flags: Mapping[str, TrainFlag],
                checkpoint_every_check: bool = False) -> tuple[dict[str, TrainSettings], int]:
    """The base settings of every model the trials train, and the largest budget of a trial in sequences.

    `args` holds the fixed flags, parsed as `ntm train` parses them. Every combination of the searched
    values' candidates is built (ranges: both ends), so a bad value (a batch size of 0, a memory width a
    model rejects) fails here, in one line, rather than in every trial. `checkpoint_every_check`: each
    base saves a checkpoint at every held-out check (what ASHA needs, see `command.sweep_spec`).
    """
    default_model = args.model or "ntm"
    models = next((search.values for search in searches if search.flag.dest == "model"), (default_model,))
    bases = {}
    for model in models:
        try:
            settings = settings_from_args(args, model)
        except UsageError as error:
            which = "every trial" if len(models) == 1 else f"the trials with model={model}"
            raise usage_error(f"{which} would fail: {error}") from None
        if checkpoint_every_check:
            settings = dataclasses.replace(settings, checkpoint_every=settings.eval_every)
        bases[model] = settings

    fixed = {dest for dest in flags if getattr(args, dest, None) is not None}
    largest = 0
    combinations = itertools.product(*(search.values for search in searches))
    for values in itertools.islice(combinations, CHECKED_COMBINATIONS):
        config = {search.flag.dest: value for search, value in zip(searches, values)}
        try:
            refuse_step_cap_with_budget(fixed | set(config))
            settings = trial_settings(bases, config, flags)
            check_settings(settings)
        except (ValueError, TypeError) as error:
            given = ", ".join(f"{flags[dest].option[2:]}={value}" for dest, value in config.items())
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            if not isinstance(error, UsageError):
                message = f"ntm train: {in_flag_terms(message, set(flags))}"
            raise usage_error(f"the trial with {given} would fail: {message}") from None
        largest = max(largest, settings.budget_steps() * settings.batch_size)
    return bases, largest


def expected_trials(samples: int, searches: list[Search]) -> int:
    """How many trials Tune makes: `samples` times the size of the grid."""
    return samples * math.prod(len(s.values) for s in searches if s.kind == "grid")
