"""What others published on the paper's five tasks, as data with sources: the figures `ntm reproduce` puts
ours beside, and the rule by which its results page says whether ours is better.

    published.figures("copy")        # every published figure on copy, the paper's first
    published.paper_figure("copy")   # the paper's figure that ours is compared with
    published.best_other("copy")     # the best comparable figure of another implementation
    published.beats(9_600, published.paper_figure("copy"))   # True: fewer sequences than ~200,000

Every comparable figure is a number where lower is better, in one of two measures (`MEASURES`): training
sequences until the task was solved, or the cost per sequence in bits at a test value. Figures read off a
published plot are approximate, so where a source gives a range the comparison takes its better end, and
where ours is not a finished, certified figure `beats` says no. A figure in other units (Le et al. test
on sequences longer than they trained on) stays in the list as words, with no number to compare.
"""

from __future__ import annotations

import dataclasses
import math

GRAVES = "Graves et al. 2014, Neural Turing Machines (arXiv:1410.5401)"
PYTORCH_NTM = "loudinthecloud/pytorch-ntm (github.com/loudinthecloud/pytorch-ntm)"
COLLIER_BEEL = "Collier & Beel 2018, Implementing Neural Turing Machines (arXiv:1807.08518)"
LE_ET_AL = "Le, Tran & Venkatesh 2020, Neural Stored-program Memory, ICLR (arXiv:1906.08862)"

# What a comparable figure measures, in words for the page.
MEASURES = {
    "sequences_to_solve": "training sequences until solved",
    "cost": "cost per sequence in bits",
}


@dataclasses.dataclass(frozen=True)
class Published:
    """One published figure on a task: who, where, what in words, and a number where ours can be compared."""

    source: str  # the short name in tables
    where: str  # the publication and the place in it
    text: str  # the figure as published, in words
    measure: str | None = None  # one of MEASURES, or None: no number in our units
    value: float | None = None  # lower is better in every measure
    at: int | None = None  # the test value (length, items, bits) a cost was measured at
    paper: bool = False  # the NTM paper's own

    def __post_init__(self):
        if (self.measure is None) != (self.value is None) or (self.measure is not None and self.measure not in MEASURES):
            raise ValueError(f"a published figure needs a measure of {', '.join(MEASURES)} and a value, or neither")

    @property
    def value_text(self) -> str:
        if self.measure == "sequences_to_solve":
            return f"~{self.value:,.0f} sequences"
        if self.measure == "cost":
            return f"~{self.value:g} bits per sequence"
        return "—"


FIGURES: dict[str, tuple[Published, ...]] = {
    "copy": (
        Published("the paper", f"{GRAVES}, section 4.1, learning curves (read off the plot)",
                  "~0 bits per sequence within ~200,000 sequences (LSTM controller; feedforward slightly faster); "
                  "nearly perfect to length 50, a few errors and one duplicated vector at 120",
                  "sequences_to_solve", 200_000, paper=True),
        Published("pytorch-ntm", f"{PYTORCH_NTM}, README (4 seeds, read off the plot)",
                  "cost about 0 from roughly 17,000 sequences (mean of 4 seeds, batch 1); other seeds \"should "
                  "converge in less than 30K iterations\"", "sequences_to_solve", 17_000),
        Published("pytorch-ntm, run here", f"{PYTORCH_NTM}, its own train script measured on this project's CPU",
                  "bit errors first near zero after ~6,200 sequences, held near zero from ~12,600 (~21 minutes at "
                  "batch 1), with relapses at ~9,400, ~17,200 and ~19,600", "sequences_to_solve", 12_600),
        Published("Collier & Beel", f"{COLLIER_BEEL}, copy experiments",
                  "perfect at length 20; at length 40 degrades after the 36th vector (no sequence count given)"),
    ),
    "repeat_copy": (
        Published("the paper", f"{GRAVES}, section 4.2, learning curves (read off the plot)",
                  "LSTM-controller NTM ~0 by ~50,000 sequences, feedforward ~100,000; 20 x 10 replayed almost "
                  "perfectly; beyond 11 repeats the end marker follows every repeat", "sequences_to_solve", 50_000,
                  paper=True),
        Published("pytorch-ntm", f"{PYTORCH_NTM}, its repeat-copy training plots (4 seeds, read off them)",
                  "~0 at 30,000-40,000 sequences over 4 seeds (batch 1), spikes near 36,000 and 56,000",
                  "sequences_to_solve", 30_000),
        Published("Collier & Beel", f"{COLLIER_BEEL}, repeat copy",
                  "constant memory initialisation converged 1.35-1.43x faster than learned or random (batch 32; "
                  "no sequence count given)"),
        Published("Le et al.", f"{LE_ET_AL}, Table 1 (best of 5 runs)",
                  "NTM 405.1, their NUTM 366.7, on test sequences longer than training: not in our units"),
    ),
    "associative_recall": (
        Published("the paper", f"{GRAVES}, section 4.3, learning curves (read off the plot)",
                  "feedforward NTM ~0 within ~30,000 episodes, LSTM-controller NTM ~100,000; nearly perfect to "
                  "12 items, under 1 bit at 15", "sequences_to_solve", 30_000, paper=True),
        Published("Collier & Beel", f"{COLLIER_BEEL}, associative recall",
                  "perfect on 6 items, generalises perfectly to 12 (example images; no episode count given)"),
    ),
    "ngrams": (
        Published("the paper", f"{GRAVES}, section 4.4, learning curves (read off the plot)",
                  "NTM ~133-134 bits per 200-bit sequence (LSTM controller ~133.5, feedforward ~134), LSTM "
                  "~136-137, Bayes-optimal ~131-133", "cost", 133.0, at=200, paper=True),
        Published("Le et al.", f"{LE_ET_AL}, Table 1 (best of 5 runs)",
                  "NTM 132.59, their NUTM 127.7, on test sequences longer than training: not in our units"),
    ),
    "priority_sort": (
        Published("the paper", f"{GRAVES}, section 4.5, learning curves (read off the plot)",
                  "cost ~18 bits per sequence after 1,000,000 sequences (LSTM controller; feedforward ~20, LSTM "
                  "~58); writes at locations a linear function of the priority, reads in order (Figure 17)",
                  "cost", 18.0, at=20, paper=True),
        Published("Le et al.", f"{LE_ET_AL}, Table 1 (best of 5 runs)",
                  "NTM 24.41, their NUTM 20.0, on test sequences longer than training: not in our units"),
    ),
}


def figures(task: str) -> tuple[Published, ...]:
    """Every published figure on `task` (the paper's first); empty for a task nobody published on."""
    return FIGURES.get(task, ())


def paper_figure(task: str) -> Published | None:
    """The paper's comparable figure on `task`, if it has one."""
    return next((figure for figure in figures(task) if figure.paper and figure.measure), None)


def best_other(task: str) -> Published | None:
    """The best comparable figure of another implementation, in the paper figure's measure (lowest value)."""
    paper = paper_figure(task)
    others = [figure for figure in figures(task)
              if not figure.paper and figure.measure and (paper is None or figure.measure == paper.measure)]
    return min(others, key=lambda figure: figure.value, default=None)


def beats(ours: float | None, figure: Published | None) -> bool | None:
    """Whether ours is better than `figure` (strictly lower); None where there is nothing to compare.

    `ours` is None (or not finite) when we have no finished figure, e.g. a task not solved: that never beats."""
    if figure is None or figure.measure is None:
        return None
    if ours is None or not math.isfinite(ours):
        return False
    return ours < figure.value
