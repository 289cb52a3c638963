"""One experiment, the use case behind `ntm train`, `ntm reproduce` and every trial of `ntm sweep`:
train (or resume) a run's seeds, pick the best seed by one rule, evaluate it, write its report.

    experiment = run_experiment(TrainSettings.for_task("copy"), run_dir="runs/copy", seeds=2)
    experiment.best, experiment.rows, experiment.verdict, experiment.report

The best seed (`best_seed`): seeds that passed the held-out check first, the one that needed the fewest
training sequences first (all seeds of a run share one batch size, and sequences, unlike seconds, do not
depend on what else the machine was doing); then the lowest cost of the last logged training steps.
The best seed's final table (`ntm.evaluate.final_rows`, eval.json) holds the rows its stop rule
certified and a test of its own at every other value, so its summary (`verdict_text`) and its table agree.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from ntm.evaluate import EVAL_SEQUENCES, final_rows, verdict_text, write_eval
from ntm.plots import write_report
from ntm.training import SeedResult, TrainResult, TrainSettings, train
from ntm.training.records import HeldOut
from ntm.training.runs import RunDirectory
from ntm.training.state import Progress


@dataclasses.dataclass
class Conclusion:
    """What evaluating a trained seed found: its final table, the one-line verdict, its report."""

    task: Any
    rows: list[dict]  # the final table (eval.json)
    solved: bool  # the stop rule certified it
    verdict: str
    report: Path


@dataclasses.dataclass
class Experiment:
    result: TrainResult
    best: SeedResult
    conclusion: Conclusion

    @property
    def rows(self) -> list[dict]:
        return self.conclusion.rows

    @property
    def solved(self) -> bool:
        return self.conclusion.solved

    @property
    def verdict(self) -> str:
        return self.conclusion.verdict


def best_seed(seeds: list[SeedResult]) -> SeedResult:
    """The one rule: solved first, fewest sequences to solve first; then the lowest last training cost."""

    def rank(seed: SeedResult):
        cost = seed.last.get("cost", math.inf) if seed.last else math.inf
        return (not seed.solved, seed.solved_sequences or 0, cost if math.isfinite(cost) else math.inf)

    return min(seeds, key=rank)


def conclude(run_dir: Path, eval_values: list[int] | None = None,
             eval_sequences: int = EVAL_SEQUENCES) -> Conclusion:
    """One seed's final table (eval.json): the rows its stop rule certified and a test of its own at every
    other value; its verdict in words (the certificate's: the two cannot disagree); report.md."""
    run, solved, rows = final_rows(run_dir, eval_values, eval_sequences, confidence=run_confidence(run_dir))
    write_eval(run, rows)
    solved, verdict = verdict_text(solved, rows, run.task)
    return Conclusion(run.task, rows, solved, verdict, write_report(run_dir))  # every table of eval.json


def run_confidence(run_dir: Path) -> float:
    return RunDirectory(run_dir).settings.confidence


def run_experiment(
    settings: TrainSettings | None = None,
    *,
    run_dir: Path | str | None = None,
    seeds: int = 1,
    resume: bool = False,
    budget: dict[str, Any] | None = None,
    eval_values: list[int] | None = None,
    eval_sequences: int = EVAL_SEQUENCES,
    console: Console | None = None,
    progress: bool = True,
    on_held_out: Callable[[HeldOut, Progress], None] | None = None,
) -> Experiment:
    """Train `seeds` seeds (or resume the run in `run_dir`, with a new `budget`), then evaluate the best.

    The arguments are `ntm.training.train`'s, and the final table's test values and sequences per row.
    A single seed that diverges raises FloatingPointError, as `train` does.
    """
    result = train(settings, run_dir=run_dir, seeds=seeds, resume=resume, budget=budget, console=console,
                   progress=progress, on_held_out=on_held_out)
    best = best_seed(result.seeds)
    return Experiment(result, best, conclude(best.run_dir, eval_values, eval_sequences))
