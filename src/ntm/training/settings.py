"""TrainSettings: every training choice in one validated, frozen dataclass, with each task's defaults.

Each field carries its command-line help (and choices) in its metadata, so `ntm train --help` is
generated from here. `TrainSettings.for_task(task, model, **overrides)` starts from the task's own
defaults for that model (chosen by measured time to solve) and applies the overrides on top.
Settings are checked when built, model and task options included: an option the model or task does
not have, or a setting that cannot take effect (momentum with Adam), is a ValueError naming it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ntm import tasks
from ntm.dictconfig import DictConfig

OPTIMIZERS = ("adam", "rmsprop")
CURRICULA = ("none", "levels", "ramp", "exp3s")
LOSS_AVERAGES = ("sequence", "step")


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None, flag: bool = True,
            metavar: str | None = None, **kwargs):
    """A dataclass field whose metadata holds its command-line help, choices, metavar and whether it is a flag."""
    metadata = {"help": help, "flag": flag}
    if choices is not None:
        metadata["choices"] = choices
    if metavar is not None:
        metadata["metavar"] = metavar
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


@dataclasses.dataclass(frozen=True)
class TrainSettings(DictConfig):
    """Every training choice. Model fields go in `model_options`, task difficulty in `task_options`."""

    # a task name: one of ntm.tasks.names(), or "module:Class" of a Task subclass (which may be given itself)
    task: str = setting("copy", "the task to learn", flag=False)
    model: str = setting("ntm", "the model to train", flag=False)
    model_options: dict = setting({}, "model config fields", flag=False)
    task_options: dict = setting({}, "task difficulty options", flag=False)
    optimizer: str = setting("adam", "adam, or rmsprop with momentum (Graves)", OPTIMIZERS)
    lr: float = setting(3e-3, "learning rate")
    momentum: float = setting(0.9, "rmsprop momentum")
    batch_size: int = setting(8, "sequences per step (per seed)")
    grad_clip: float = setting(10.0, "global gradient-norm clip")
    loss_per: str = setting("sequence", "the training loss: bits summed over each sequence and averaged over the "
                                        "batch (sequence), or averaged over the batch's scored steps (step)",
                            LOSS_AVERAGES)
    lr_drop_below: float | None = setting(None, "once the running mean (about 200 steps) of training bit errors "
                                                "per sequence falls under this, multiply the learning rate by "
                                                "--lr-drop, once (kept in the optimizer state, so resume is exact)")
    lr_drop_after: int | None = setting(None, "after this many training sequences (per seed), multiply the "
                                              "learning rate by --lr-drop, once (with --lr-drop-below: at "
                                              "whichever comes first)")
    lr_drop: float = setting(0.3, "the factor of --lr-drop-below and --lr-drop-after")
    seed: int = setting(0, "random seed of parameters and data (seeds seed, seed+1, ... with --seeds)")
    steps: int | None = setting(None, "train exactly this many steps (a budget; the run still stops when solved "
                                      "if --until-solved)")
    sequences: int | None = setting(None, "budget in training sequences instead of steps")
    minutes: float | None = setting(None, "stop after this many minutes of training (a wall-time budget)")
    until_solved: bool = setting(True, "stop once the held-out check says solved")
    max_steps: int = setting(20_000, "step cap when no --steps or --sequences budget is given")
    curriculum: str = setting("none", "none; levels (easy to hard, moving on when the held-out check passes); "
                                      "exp3s (a bandit picks each batch's difficulty by learning progress, "
                                      "Graves et al. 2017)", CURRICULA)
    eval_every: int = setting(100, "steps between held-out checks")
    judge_sequences: int = setting(1000, "fresh held-out sequences of a mean criterion's certificate (N-grams, "
                                         "priority sort), and the fewest per row of a run's final check; a rate "
                                         "criterion draws as many as its certificate needs")
    judge_passes: int = setting(1, "certified held-out checks in a row, each on fresh sequences, before a run "
                                   "(or a curriculum level) counts as solved")
    screen_sequences: int = setting(100, "held-out sequences of each check's cheap screen (its own sequences, "
                                         "at the hardest case); only a pass goes on to certify")
    judge_share: float = setting(0.5, "a passed screen goes on to certify only while the held-out sequences "
                                      "judged so far are at most this many per training sequence (a forward "
                                      "pass costs about a fifth of a training step: 0.5 keeps judging near "
                                      "10 % of the time)")
    replay_share: float = setting(0.0, "exact-output tasks: the chance that a training sequence is one of the last "
                                       "64 held-out sequences that failed a check once the model passed its first "
                                       "screen, instead of a fresh draw (0: off)")
    max_failure_rate: float = setting(1e-3, "exact-output tasks (copy, repeat copy, associative recall): solved "
                                            "when at most this share of sequences has any wrong bit")
    confidence: float = setting(0.95, "the chance, at least, that a run which says solved meets its task's "
                                      "criterion (spent over all its certification attempts)")
    log_every: int = setting(10, "steps between rows of metrics.jsonl")
    checkpoint_every: int = setting(1000, "steps between checkpoints")
    keep: int = setting(3, "checkpoints kept")
    nan_patience: int = setting(5, "non-finite steps in a row after which a seed restores its last checkpoint "
                                   "and halves its learning rate")
    max_restores: int = setting(5, "restores after which a seed that keeps producing non-finite values stops")
    race: bool = setting(False, "with several seeds side by side (--seeds K; by default one per core): the run ends when "
                                "the first seed is certified solved and the others stop; each seed's certificate is "
                                "held to 1/K of the allowed error (1 - confidence), so the model a run calls solved "
                                "is so with the stated confidence")
    trim_padding: bool = setting(False, "run each batch only to its longest sequence, rounded up to a multiple of "
                                        "16 steps, instead of the longest the task can produce (exact: padding is "
                                        "inert; one compile per rounded length)")
    remat: bool = setting(False, "recompute each step in the backward pass (less memory for long sequences)")
    init_from: str | None = setting(None, "start from this model's parameters instead of random ones: a saved "
                                          "model, a run directory, or a pretrained model's name; the task may "
                                          "add input and output channels, which start at zero (copy -> "
                                          "repeat_copy)", metavar="MODEL")

    def __post_init__(self) -> None:
        # a task class of one's own is kept by the name that finds it again ("module:Class")
        self._store("task", tasks.name_of(self.task) if isinstance(self.task, type) else self.task)
        tasks.task_class(self.task)  # ValueError for an unknown name or a class that breaks the contract
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.loss_per not in LOSS_AVERAGES:
            raise ValueError(f"loss_per must be one of {', '.join(LOSS_AVERAGES)}; got {self.loss_per!r}")
        if isinstance(self.lr_drop, bool) or not (isinstance(self.lr_drop, (int, float)) and 0 < self.lr_drop <= 1):
            raise ValueError(f"lr_drop must be in (0, 1], got {self.lr_drop!r}")
        if self.lr_drop_below is not None and (isinstance(self.lr_drop_below, bool) or not (
                isinstance(self.lr_drop_below, (int, float)) and 0 < self.lr_drop_below < math.inf)):
            raise ValueError(f"lr_drop_below must be a positive number, got {self.lr_drop_below!r}")
        if self.curriculum not in CURRICULA:
            raise ValueError(f"curriculum must be one of {', '.join(CURRICULA)}; got {self.curriculum!r}")
        for name in ("lr", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if isinstance(self.momentum, bool) or not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if isinstance(self.judge_share, bool) or not (isinstance(self.judge_share, (int, float))
                                                      and 0 < self.judge_share < math.inf):
            raise ValueError(f"judge_share must be a positive number, got {self.judge_share!r}")
        if isinstance(self.replay_share, bool) or not (isinstance(self.replay_share, (int, float))
                                                       and 0 <= self.replay_share < 1):
            raise ValueError(f"replay_share must be in [0, 1), got {self.replay_share!r}")
        for name in ("max_failure_rate", "confidence"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 < value < 1):
                raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
        self.check_positive_ints("batch_size", "max_steps", "eval_every", "judge_sequences", "judge_passes",
                                 "screen_sequences",
                                 "log_every", "checkpoint_every", "keep", "nan_patience")
        self.check_positive_ints("seed", "max_restores", minimum=0)
        if not all(isinstance(getattr(self, name), bool) for name in ("until_solved", "remat", "trim_padding", "race")):
            raise ValueError("until_solved, remat, trim_padding and race must be True or False")
        if self.minutes is not None and (isinstance(self.minutes, bool) or not isinstance(self.minutes, (int, float))
                                         or not 0 < self.minutes < math.inf):
            raise ValueError(f"minutes must be a positive number, got {self.minutes!r}")
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from.strip()):
            raise ValueError(f"init_from must name a model, got {self.init_from!r}")
        for name in ("steps", "sequences", "lr_drop_after"):
            value = getattr(self, name)
            if value is not None:
                self.check_positive_ints(name)
        if self.steps is not None and self.sequences is not None:
            raise ValueError(f"give one budget, not both: steps={self.steps} and sequences={self.sequences}")
        self.refuse_without_effect("momentum", self.optimizer == "rmsprop",
                                   f"with optimizer={self.optimizer!r} (it is RMSProp's momentum)")
        self.check_options()

    def check_options(self) -> None:
        """ValueError naming the option if `task_options` or `model_options` do not fit the task and model:
        the task and the model's config are built here, at the call, not when training starts."""
        from ntm import models  # the registry imports the models, which need JAX

        if not isinstance(self.model_options, dict) or not isinstance(self.task_options, dict):
            raise ValueError("model_options and task_options must be dicts")
        spec = models.get(self.model)
        fields = {field.name for field in dataclasses.fields(spec.config_class)} - {"input_size", "output_size"}
        for name in self.model_options:
            if name not in fields:
                owners = [other for other in models.names()
                          if name in {f.name for f in dataclasses.fields(models.get(other).config_class)}]
                where = f" (it is an option of {', '.join(owners)})" if owners else ""
                raise ValueError(f"{name} does not apply to model={self.model!r}{where}")
        task = tasks.get(self.task, **self.task_options)
        spec.config_class(input_size=task.input_size, output_size=task.output_size, **self.model_options)

    @classmethod
    def for_task(cls, task: str | type, model: str = "ntm", **overrides: Any) -> "TrainSettings":
        """The task's defaults for this model, with `overrides` on top (model and task options merged).

        `task` is a task name (`ntm.tasks.get`'s: one of the paper's, or "module:Class") or a Task class."""
        values = tasks.task_class(task)().training_defaults(model)
        for name in ("model_options", "task_options"):
            values[name] = {**values.get(name, {}), **(overrides.pop(name, None) or {})}
        return cls.from_dict({**values, **overrides, "task": task, "model": model})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainSettings":
        values = dict(values)
        if isinstance(values.get("curriculum"), bool):  # runs written before curricula had names
            values["curriculum"] = "levels" if values["curriculum"] else "none"
        for retired in ("eval_batch_size", "fault_rate"):  # fault_rate: faults are injected by the tests now
            values.pop(retired, None)
        return super().from_dict(values)

    def seed_error(self, seeds: int) -> float:
        """The chance each seed may spend, over all its certification attempts, of calling a model solved that
        is not: 1 - confidence, split evenly between the seeds of a race (any one of them may be the model
        the run gives), whole for a seed whose verdict stands alone."""
        return (1 - self.confidence) / (seeds if self.race else 1)

    def budget_steps(self) -> int:
        """The most steps this run may take (per seed)."""
        if self.steps is not None:
            return self.steps
        if self.sequences is not None:
            return math.ceil(self.sequences / self.batch_size)
        return self.max_steps


# Settings a resumed run may change: its budget, nothing that shapes the model or the data.
BUDGET_FIELDS = ("steps", "sequences", "until_solved", "max_steps", "minutes")
