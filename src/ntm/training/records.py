"""Typed records of training: one seed's step statistics, and the rows of metrics.jsonl.

  StepStats    one seed's compiled step, on the host: loss, cost, bit errors, gradient norm, finite
  Training     a logged training row: means over the steps since the last row, the counters, the speed
  HeldOut      a held-out check: the verdict's figures (`Verdict.row()`) at a step, level and time
  LevelUp, Solved, NonFinite, NanRestore, Diverged    the loop's other events
Each record's `to_json()` is the line `MetricsLog.write` puts in metrics.jsonl (the format runs have
always had: an event row carries `"event": KIND`, a training row none); `parse_records` is the one
reader (`RunDirectory.records()`), for plots, sweeps and reports alike.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np


@dataclasses.dataclass(frozen=True)
class StepStats:
    """What the compiled step measured for one seed (batch means), on the host."""

    loss: float
    cost: float
    bit_errors: float
    grad_norm: float
    finite: bool

    @classmethod
    def of_seeds(cls, stats: dict[str, Any]) -> list["StepStats"]:
        """The step's statistics of K seeds ({name: [K]} arrays, fetched from the device) as K records."""
        host = {name: np.asarray(value) for name, value in stats.items()}
        return [cls(float(host["loss"][k]), float(host["cost"][k]), float(host["bit_errors"][k]),
                    float(host["grad_norm"][k]), bool(host["finite"][k])) for k in range(len(host["finite"]))]


def window_means(window: list[StepStats]) -> dict[str, float]:
    """Mean cost, bit errors and gradient norm over the steps whose update was applied (NaN if none)."""
    good = [stats for stats in window if stats.finite]
    return {name: float(np.mean([getattr(stats, name) for stats in good])) if good else math.nan
            for name in ("cost", "bit_errors", "grad_norm")}


@dataclasses.dataclass(frozen=True)
class Record:
    """A row of metrics.jsonl: every row has the step it was logged at."""

    KIND: ClassVar[str | None] = None  # the row's "event"; None for training rows

    step: int

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        head = {"step": values.pop("step")}
        if self.KIND is not None:
            head["event"] = self.KIND
        return {**head, **values}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "Record":
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in row.items() if key in names})


NAN = math.nan


@dataclasses.dataclass(frozen=True)
class Training(Record):
    sequences: int = 0
    cost: float = NAN
    bit_errors: float = NAN
    grad_norm: float = NAN
    level: int = 0
    lr: float = NAN  # the rate updates are taken at: the learning rate times a one-time drop's scale
    skipped: int = 0
    time: float = NAN
    seq_per_s: float = NAN


@dataclasses.dataclass(frozen=True)
class HeldOut(Record):
    KIND: ClassVar[str] = "held_out"
    sequences: int = 0
    level: int = 0
    time: float = NAN
    verdict: dict[str, Any] = dataclasses.field(default_factory=dict)  # `Verdict.row()`: figures and solved

    @property
    def cost(self) -> float:
        return float(self.verdict.get("cost", NAN))

    @property
    def bit_errors(self) -> float:
        return float(self.verdict.get("bit_errors", NAN))

    @property
    def solved(self) -> bool:
        return bool(self.verdict.get("solved", False))

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "event": self.KIND, "sequences": self.sequences, "level": self.level,
                "time": self.time, **self.verdict}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "HeldOut":
        own = ("step", "event", "sequences", "level", "time")
        return cls(row["step"], row.get("sequences", 0), row.get("level", 0), row.get("time", NAN),
                   {key: value for key, value in row.items() if key not in own})


@dataclasses.dataclass(frozen=True)
class LevelUp(Record):
    KIND: ClassVar[str] = "level"
    level: int = 0
    sequences: int = 0
    difficulty: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Solved(Record):
    KIND: ClassVar[str] = "solved"
    sequences: int = 0
    time: float = NAN


@dataclasses.dataclass(frozen=True)
class NonFinite(Record):
    KIND: ClassVar[str] = "non_finite"
    skipped: int = 0


@dataclasses.dataclass(frozen=True)
class NanRestore(Record):
    KIND: ClassVar[str] = "nan_restore"
    restored_step: int = 0
    lr: float = NAN


@dataclasses.dataclass(frozen=True)
class Diverged(Record):
    KIND: ClassVar[str] = "diverged"
    skipped: int = 0
    restores: int = 0


@dataclasses.dataclass(frozen=True)
class Forked(Record):
    """This run continued another's at `step` (population-based training's exploit): the rows before are the
    other run's, and from here on it trains with its own settings (`changed`: flag -> [before, after])."""

    KIND: ClassVar[str] = "forked"
    source: str = ""  # the run it continued (a sweep trial's name)
    changed: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Outrun(Record):
    """A race (`TrainSettings.race`) ended: another seed of the run was certified solved first, so this one stopped."""

    KIND: ClassVar[str] = "outrun"
    winner: int = 0  # the seed certified first


EVENTS: dict[str, type[Record]] = {kind.KIND: kind for kind in (HeldOut, LevelUp, Solved, NonFinite, NanRestore,
                                                                   Diverged, Forked, Outrun)}


def parse_records(rows: list[dict[str, Any]]) -> list[Record]:
    """metrics.jsonl rows (dicts) as typed records; rows of unknown events are left out."""
    records = []
    for row in rows:
        kind = Training if "event" not in row else EVENTS.get(row["event"])
        if kind is not None and isinstance(row.get("step"), int):
            records.append(kind.from_json(row))
    return records


def of_kind(records: list[Record], kind: type[Record]) -> list:
    """The records of one type, in order."""
    return [record for record in records if type(record) is kind]
