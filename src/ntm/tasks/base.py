"""The interface every algorithmic task shares: `Batch`, `Task`, and difficulty validation.

A task turns a NumPy `Generator` and a difficulty (ranges such as `min_length`/`max_length`) into
a padded `Batch`. The time axis of a batch is the longest sequence the difficulty can produce, so
every batch of one difficulty has one shape and a compiled training step never recompiles.
Subclasses declare their difficulty ranges and paper defaults, and implement `_max_steps` and
`_fill`; everything else (validation, padding, curriculum, generalisation settings) lives here.
"""

from __future__ import annotations

import abc
import math
import numbers
from typing import Any, ClassVar, NamedTuple

import numpy as np

# Curriculum levels sit at these fractions of the configured training difficulty.
CURRICULUM_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


class Batch(NamedTuple):
    """One batch, batch-first. Padding sits at the end of each sequence and is all zeros."""

    inputs: np.ndarray  # float32 [B,T,input_size]
    targets: np.ndarray  # float32 [B,T,output_size]; zero wherever mask is 0
    mask: np.ndarray  # float32 [B,T]; 1 where the output is scored
    lengths: np.ndarray  # int32 [B]; real steps of each sequence


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """`value` as a Python int >= minimum (NumPy integers accepted), else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Task(abc.ABC):
    """A sequence task: sizes, seeded sampling, curriculum, evaluation values and the solve test.

    The contract of a task class (the five of the paper keep it; `ntm.tasks.get("pkg.mod:Class")`
    checks a user's class against it and names the first clause it breaks):

    Class attributes to set:
      name                 a short name for titles and run directories, e.g. "parity" (letters,
                           digits, "_", "-", ".")
      PAPER_DIFFICULTY     the default training difficulty, {option: int}; its keys are the task's
                           difficulty options (`tasks.get(name, max_length=8)`, `--max-length 8`)
      RANGES               ((min key, max key, smallest value), ...): the ranges among those options;
                           each sequence draws its value from [min, max], the curriculum grows each max
      generalisation_key   K such that min_K and max_K form a range (or override `_fixed`): what
                           evaluation varies, e.g. "length"
      DEFAULT_EVAL_VALUES  the values of K the final table tests by default, e.g. (10, 20, 40)
      solve_threshold      solved when the mean of `solve_metric` ("bit_errors" unless set) per sequence
                           is below it (a property); `ExactOutputTask` sets it for deterministic answers
    `__init__` takes keyword options only, each with a default (`tasks.get` passes them), sets
    `input_size` and `output_size` (ints >= 1) and then calls `super().__init__(difficulty)` with the
    difficulty options. Methods to implement:
      _max_steps(d) -> int    T: the longest sequence difficulty `d` can produce
      _fill(rng, batch, d)    draw `len(batch.lengths)` sequences at difficulty `d` with `rng` and write
                              them into the zeroed arrays of `batch` in place: inputs, targets (bits, 0
                              or 1) and mask (1 where scored) up to each sequence's length, and lengths
    Optional: TRAINING_DEFAULTS (settings per model), REPRODUCTION_BUDGET (`ntm reproduce`'s, per model),
    `sequence_stats` with its own `solve_metric`, `reference_costs`, `_check_extra` (more checks of a
    difficulty), `axis_label`, `solve_reason`, `criterion_at` (a criterion that scales with each judged
    row's difficulty, as N-grams' 2 bits per 200 predicted bits).
    """

    name: ClassVar[str]
    # Difficulty ranges: (min key, max key, smallest allowed value).
    RANGES: ClassVar[tuple[tuple[str, str, int], ...]]
    # The paper's training difficulty; also fixes which difficulty keys exist.
    PAPER_DIFFICULTY: ClassVar[dict[str, int]]
    generalisation_key: ClassVar[str]
    DEFAULT_EVAL_VALUES: ClassVar[tuple[int, ...]]
    # What each difficulty option means, for `ntm train --help`; `difficulty_help` words the ones left out.
    DIFFICULTY_HELP: ClassVar[dict[str, str]] = {}

    input_size: int
    output_size: int

    def __init__(self, difficulty: dict[str, Any]):
        self.difficulty = self._check_difficulty({**self.PAPER_DIFFICULTY, **difficulty})

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value}" for key, value in self.difficulty.items())
        return f"{type(self).__name__}({options})"

    # ---- difficulty ----------------------------------------------------------------------------

    def _check_difficulty(self, difficulty: dict[str, Any]) -> dict[str, int]:
        unknown = sorted(set(difficulty) - set(self.PAPER_DIFFICULTY))
        if unknown:
            raise ValueError(
                f"unknown {self.name} option(s): {', '.join(unknown)}; "
                f"difficulty options are {', '.join(self.PAPER_DIFFICULTY)}"
            )
        checked = {key: check_int(key, difficulty[key], 0) for key in self.PAPER_DIFFICULTY}
        for low_key, high_key, smallest in self.RANGES:
            check_int(low_key, checked[low_key], smallest)
            check_int(high_key, checked[high_key], smallest)
            if checked[low_key] > checked[high_key]:
                raise ValueError(
                    f"{low_key} ({checked[low_key]}) must not exceed {high_key} ({checked[high_key]})"
                )
        self._check_extra(checked)
        return checked

    @classmethod
    def difficulty_help(cls, key: str) -> str:
        """One line on what difficulty option `key` sets, e.g. 'longest sequence in training'."""
        if key in cls.DIFFICULTY_HELP:
            return cls.DIFFICULTY_HELP[key]
        for low_key, high_key, _ in cls.RANGES:
            if key in (low_key, high_key):
                return f"{'smallest' if key == low_key else 'largest'} {low_key.removeprefix('min_')} in training"
        return key.replace("_", " ")

    def _check_extra(self, difficulty: dict[str, int]) -> None:
        """Task-specific checks beyond the ranges (e.g. more items than fit); ValueError naming the option."""

    def resolve(self, **difficulty: Any) -> dict[str, int]:
        """The configured difficulty with these overrides, validated."""
        return self._check_difficulty({**self.difficulty, **difficulty})

    def max_steps(self, **difficulty: Any) -> int:
        """T of every batch at this difficulty: the longest sequence it can produce."""
        return self._max_steps(self.resolve(**difficulty))

    @abc.abstractmethod
    def _max_steps(self, d: dict[str, int]) -> int: ...

    # ---- sampling ------------------------------------------------------------------------------

    def sample(
        self, rng: np.random.Generator, batch_size: int, *, pad_to: int | None = None, **difficulty: Any
    ) -> Batch:
        """A batch of `batch_size` sequences at the configured difficulty with these overrides.

        T is `max_steps(**difficulty)`, or `pad_to` if that is larger.
        """
        return self._sample(rng, batch_size, pad_to, difficulty)[0]

    def _sample(
        self, rng: np.random.Generator, batch_size: int, pad_to: int | None, difficulty: dict[str, Any]
    ) -> tuple[Batch, Any]:
        """The batch and whatever `_fill` returns about how it was drawn (e.g. N-gram tables)."""
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        batch_size = check_int("batch_size", batch_size)
        d = self.resolve(**difficulty)
        steps = self._max_steps(d)
        if pad_to is not None:
            if check_int("pad_to", pad_to) < steps:
                raise ValueError(f"pad_to ({pad_to}) is shorter than the {steps} steps this difficulty needs")
            steps = pad_to
        batch = Batch(
            inputs=np.zeros((batch_size, steps, self.input_size), np.float32),
            targets=np.zeros((batch_size, steps, self.output_size), np.float32),
            mask=np.zeros((batch_size, steps), np.float32),
            lengths=np.zeros(batch_size, np.int32),
        )
        return batch, self._fill(rng, batch, d)

    @abc.abstractmethod
    def _fill(self, rng: np.random.Generator, batch: Batch, d: dict[str, int]) -> Any:
        """Write one batch's sequences into the zeroed arrays of `batch`, in place."""

    def _draw(self, rng: np.random.Generator, batch_size: int, d: dict[str, int], low_key: str, high_key: str):
        """Per-sequence integers drawn uniformly from [d[low_key], d[high_key]]."""
        return rng.integers(d[low_key], d[high_key] + 1, size=batch_size)

    # ---- curriculum and generalisation ---------------------------------------------------------

    def curriculum_levels(self) -> list[dict[str, int]]:
        """Difficulties from easy to the configured one (the last equals `self.difficulty`).

        Each range's maximum grows through a quarter, half, three quarters and all of its configured
        value; ranges whose minimum equals their maximum (fixed sizes) grow as a whole. Levels that
        coincide after rounding appear once.
        """
        levels: list[dict[str, int]] = []
        for fraction in CURRICULUM_FRACTIONS:
            level = self.resolve(**self._scaled(fraction))
            if not levels or level != levels[-1]:
                levels.append(level)
        return levels

    def ramp_levels(self) -> list[dict[str, int]]:
        """The levels of the `ramp` curriculum, easy to the configured difficulty; by default those of
        `curriculum_levels`. Tasks whose short sequences a controller can solve from its own state
        (without the memory) grow something else first."""
        return self.curriculum_levels()

    def _scaled(self, fraction: float) -> dict[str, int]:
        scaled = dict(self.difficulty)
        for low_key, high_key, smallest in self.RANGES:
            low, high = self.difficulty[low_key], self.difficulty[high_key]
            new_high = max(math.ceil(high * fraction), smallest)
            scaled[high_key] = new_high
            scaled[low_key] = new_high if low == high else min(low, new_high)
        return scaled

    @property
    def default_eval_values(self) -> list[int]:
        """Values of `generalisation_key` that evaluation tests by default."""
        return list(self.DEFAULT_EVAL_VALUES)

    def eval_difficulty(self, value: int, **difficulty: Any) -> dict[str, int]:
        """A difficulty with the generalisation quantity fixed at `value`, validated.

        Other quantities come from `difficulty` over the configured one: pass a curriculum level to
        test that level's hardest case (e.g. repeat copy keeps that level's most repeats).
        """
        value = check_int(self.generalisation_key, value)
        base = self.resolve(**difficulty)
        return self.resolve(**{**base, **self._fixed(value, base)})

    def _fixed(self, value: int, base: dict[str, int]) -> dict[str, int]:
        """The difficulty keys that pin the generalisation quantity at `value`."""
        return {f"min_{self.generalisation_key}": value, f"max_{self.generalisation_key}": value}

    # ---- judging: what "solved" means for this task ----------------------------------------------

    # The per-sequence statistic that solving is judged on, and why the threshold is what it is.
    solve_metric: ClassVar[str] = "bit_errors"
    solve_reason: ClassVar[str] = ""

    @property
    def solve_threshold(self) -> float:
        """Solved when the mean of `solve_metric` per sequence is below this, at the hardest training case."""
        raise NotImplementedError

    @property
    def solve_description(self) -> str:
        return f"mean {self.solve_metric.replace('_', ' ')} per sequence under {self.solve_threshold:g}"

    def solved(self, means: dict[str, float]) -> bool:
        """Whether these per-sequence means (keys as `sequence_stats`, plus `excess_cost`) meet the
        threshold as point estimates (a quick look; the stop rule certifies `criterion` instead)."""
        return float(means[self.solve_metric]) < self.solve_threshold

    @property
    def criterion(self):
        """What solved means, as a test the judge can certify (`ntm.training.certify`): by default the
        mean of `solve_metric` per sequence under `solve_threshold`, by a one-sided upper bound."""
        from ntm.training.certify import MeanBelow

        return MeanBelow(threshold=self.solve_threshold, metric=self.solve_metric)

    def criterion_at(self, difficulty: dict[str, Any]):
        """The criterion a row at `difficulty` (a judged or evaluated case) is certified against: `criterion`
        unless the task scales it with the case (N-grams: 2 bits per 200 predicted bits at every length)."""
        del difficulty
        return self.criterion

    def sequence_stats(self, logits, batch) -> dict[str, Any]:
        """Per-sequence statistics [B] in JAX: cost in bits and bit errors; tasks may add their own."""
        from ntm import metrics  # JAX is only needed once a model runs

        return {
            "cost": metrics.bit_cross_entropy(logits, batch.targets, batch.mask),
            "bit_errors": metrics.bit_errors(logits, batch.targets, batch.mask),
        }

    def reference_costs(self, batch: Batch) -> np.ndarray | None:
        """The best achievable cost of each sequence [B] where one is known (N-grams), else None."""
        return None

    def hardest(self, difficulty: dict[str, Any] | None = None) -> dict[str, int]:
        """The hardest case of a training difficulty (default: the configured one): its largest
        generalisation quantity, other quantities at their most (e.g. repeat copy's repeats)."""
        base = self.resolve(**(difficulty or {}))
        key = f"max_{self.generalisation_key}"
        return self.eval_difficulty(base[key], **base) if key in base else base

    def judged_difficulties(self, difficulty: dict[str, Any] | None = None) -> list[dict[str, int]]:
        """Where the stop rule judges a training difficulty: its hardest case first, then each default
        test value inside its range, so that "solved" agrees with the rows of the final table."""
        base = self.resolve(**(difficulty or {}))
        hardest = self.hardest(base)
        key = self.generalisation_key
        low, high = base.get(f"min_{key}"), base.get(f"max_{key}")
        inside = [value for value in self.default_eval_values
                  if low is not None and low <= value < high]
        return [hardest] + [self.eval_difficulty(value, **base) for value in inside]

    @property
    def axis_label(self) -> str:
        """What the generalisation quantity is, for axes and table headers."""
        return {"length": "sequence length", "items": "items"}.get(self.generalisation_key, self.generalisation_key)

    # The model and training settings `ntm train TASK` uses, per model name (TrainSettings fields,
    # `model_options` among them); chosen by measured time to solve, see docs/experiments/tasks.md.
    TRAINING_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}
    # The paper's LSTM baseline for this task: 3 layers of this many units.
    PAPER_LSTM_UNITS: ClassVar[int] = 256
    # What the paper reports for the NTM and the LSTM on this task (read off its figures).
    PAPER_RESULTS: ClassVar[dict[str, str]] = {}
    # Test values drawn as generalisation pictures by `ntm reproduce` (the paper's Figures 4 and 8).
    PICTURE_VALUES: ClassVar[tuple[int, ...]] = ()
    # `ntm reproduce`'s budget per seed, by model: training sequences and a wall-time cap in minutes,
    # whichever ends first (a run also stops once its stop rule certifies it solved). A model left out
    # gets BASELINE_BUDGET (the NTM: its TRAINING_DEFAULTS step cap instead of those sequences).
    REPRODUCTION_BUDGET: ClassVar[dict[str, dict[str, float]]] = {}
    # The paper trains its LSTM baselines to 1,000,000 sequences; on this project's 2-core CPU the big
    # LSTMs reach a fraction of that, so the minutes bound them: 20 per run keeps the ten baseline runs
    # of `ntm reproduce` near 3.5 hours.
    BASELINE_BUDGET: ClassVar[dict[str, float]] = {"sequences": 1_000_000, "minutes": 20.0}

    def reproduction_budget(self, model: str) -> dict[str, float]:
        """`ntm reproduce`'s budget per seed for `model`: {"sequences": int, "minutes": float} (a copy)."""
        budget = dict(self.BASELINE_BUDGET)
        if model == "ntm" and "max_steps" in self.TRAINING_DEFAULTS.get("ntm", {}):
            defaults = self.training_defaults("ntm")
            budget["sequences"] = defaults["max_steps"] * defaults.get("batch_size", 8)
        budget.update(self.REPRODUCTION_BUDGET.get(model, {}))
        budget["sequences"] = int(budget["sequences"])
        budget["minutes"] = float(budget["minutes"])
        return budget

    def training_defaults(self, model: str) -> dict[str, Any]:
        """This task's default TrainSettings fields for `model` (a copy): the task's own, over the
        baselines' (the paper's LSTM sizes; Adam 1e-3, batch 8 for the LSTM and the DNC, with the
        NTM's step cap)."""
        import copy

        cap = {"max_steps": self.TRAINING_DEFAULTS["ntm"]["max_steps"]} if "max_steps" in self.TRAINING_DEFAULTS.get(
            "ntm", {}) else {}
        baselines = {"lstm": {"lr": 1e-3, "batch_size": 8, **cap,
                              "model_options": {"layers": 3, "units": self.PAPER_LSTM_UNITS}},
                     "dnc": {"lr": 1e-3, "batch_size": 8, **cap}}
        return copy.deepcopy({**baselines.get(model, {}), **self.TRAINING_DEFAULTS.get(model, {})})


class ExactOutputTask(Task):
    """A task whose answer is deterministic, so solved means (almost) no sequence with a wrong bit."""

    # The screen's point threshold (a mean bit error per hundred sequences) and the certified rate.
    BIT_ERROR_THRESHOLD: ClassVar[float] = 0.01
    MAX_FAILURE_RATE: ClassVar[float] = 1e-3
    solve_reason = ("the answer is deterministic and the paper's curves reach ~0 bits; a model that is nearly "
                    "perfect still fails rare sequences by tens of bits, so solved is a rate of failing "
                    "sequences (at most 1 in 1,000), certified with an exact binomial bound")

    @property
    def solve_threshold(self) -> float:
        return self.BIT_ERROR_THRESHOLD

    @property
    def criterion(self):
        from ntm.training.certify import FailureRate

        return FailureRate(max_rate=self.MAX_FAILURE_RATE)

    @property
    def solve_description(self) -> str:
        return self.criterion.description()


def binary_vectors(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform random bits as float32, the payload of copy, repeat copy and priority sort."""
    return rng.integers(0, 2, size=shape, dtype=np.int8).astype(np.float32)
