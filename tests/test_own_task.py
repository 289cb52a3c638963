"""Tests of a task of one's own, named as module:Class: the five tasks of the paper keep the contract of
`ntm.tasks.Task`; a class that breaks it, or a name that does not import, is a ValueError naming what is
wrong (on the command line exit status 2 and one line); and the example of docs/examples/parity.py goes
through the lab: trained on the command line until the held-out check says solved, evaluated, shown,
reported, resumed from its run directory and under a curriculum (its sweep on Ray is in test_sweep.py, with
the other tests that start Ray)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ntm import tasks
from ntm.commands import cli, train_flags
from ntm.evaluate import load_run
from ntm.tasks.base import Batch, ExactOutputTask, Task
from ntm.tasks.contract import check_task_class
from ntm.training import TrainSettings, train

REPO = Path(__file__).resolve().parent.parent
PARITY = "docs.examples.parity:Parity"
# A small machine for parity: one bit of state is all it needs.
PARITY_FLAGS = ["--memory-slots", "8", "--memory-width", "4", "--controller-units", "16", "--lr", "1e-2",
                "--batch-size", "16", "--eval-every", "50", "--max-steps", "3000"]


@pytest.fixture(autouse=True)
def repository_on_path(monkeypatch):
    """docs.examples.parity imports from the repository's root, as it does for `ntm` run there."""
    monkeypatch.syspath_prepend(str(REPO))


# ----------------------------------------------------------------------------- the contract


class Echo(ExactOutputTask):
    """A valid task of one's own: repeat each input bit at the same step."""

    name = "echo"
    RANGES = (("min_length", "max_length", 1),)
    PAPER_DIFFICULTY = {"min_length": 1, "max_length": 4}
    generalisation_key = "length"
    DEFAULT_EVAL_VALUES = (2, 4, 8)

    def __init__(self, *, bits: int = 2, **difficulty: Any):
        self.input_size = self.output_size = bits
        super().__init__(difficulty)

    def _max_steps(self, d: dict[str, int]) -> int:
        return d["max_length"]

    def _fill(self, rng: np.random.Generator, batch: Batch, d: dict[str, int]) -> None:
        size, longest = len(batch.lengths), d["max_length"]
        lengths = rng.integers(d["min_length"], longest + 1, size=size)
        real = np.arange(longest)[None, :] < lengths[:, None]
        bits = rng.integers(0, 2, size=(size, longest, self.input_size)) * real[..., None]
        batch.inputs[:, :longest] = bits
        batch.targets[:, :longest] = bits
        batch.mask[:, :longest] = real
        batch.lengths[:] = lengths


class NotATask:
    name = "plain"


class NoFill(Task):
    name = "nofill"
    RANGES, PAPER_DIFFICULTY, DEFAULT_EVAL_VALUES = Echo.RANGES, Echo.PAPER_DIFFICULTY, (2,)
    generalisation_key = "length"

    def _max_steps(self, d):
        return d["max_length"]


class NoThreshold(Task):
    name = "nothreshold"
    RANGES, PAPER_DIFFICULTY, DEFAULT_EVAL_VALUES = Echo.RANGES, Echo.PAPER_DIFFICULTY, (2,)
    generalisation_key = "length"
    _max_steps, _fill = Echo._max_steps, Echo._fill


class UnknownRange(Echo):
    RANGES = (("min_size", "max_size", 1),)


class NoGeneralisationRange(Echo):
    generalisation_key = "items"


class NoEvalValues(Echo):
    DEFAULT_EVAL_VALUES = ()


class SlashedName(Echo):
    name = "echo/2"


class NeedsAnArgument(Echo):
    def __init__(self, width: int, **difficulty: Any):
        super().__init__(bits=width, **difficulty)


class NoOutputSize(Echo):
    def __init__(self, **difficulty: Any):
        self.input_size = 2
        Task.__init__(self, difficulty)


class ForgetsSuper(Echo):
    def __init__(self, **difficulty: Any):
        self.input_size = self.output_size = 2


class LengthsTooLong(Echo):
    def _fill(self, rng, batch, d):
        super()._fill(rng, batch, d)
        batch.lengths[:] = d["max_length"] + 1


class SoftTargets(Echo):
    def _fill(self, rng, batch, d):
        super()._fill(rng, batch, d)
        batch.targets[:] *= 0.5


class ScoresPadding(Echo):
    def _fill(self, rng, batch, d):
        super()._fill(rng, batch, d)
        batch.mask[:] = 1.0
        batch.lengths[0] = 1


class FailsToFill(Echo):
    def _fill(self, rng, batch, d):
        raise IndexError("index 4 is out of bounds")


BROKEN = [
    ("NotATask", "is not a subclass of ntm.tasks.Task"),
    ("NoFill", "NoFill does not implement _fill"),
    ("NoThreshold", "NoThreshold does not say when it is solved"),
    ("UnknownRange", "RANGES names 'min_size', 'max_size', which PAPER_DIFFICULTY lacks"),
    ("NoGeneralisationRange", "generalisation_key 'items' needs min_items and max_items"),
    ("NoEvalValues", "DEFAULT_EVAL_VALUES must be a non-empty tuple"),
    ("SlashedName", "name must be a short name"),
    ("NeedsAnArgument", "NeedsAnArgument() with its default options failed: TypeError"),
    ("NoOutputSize", "must set output_size to an integer >= 1"),
    ("ForgetsSuper", "must call super().__init__(difficulty)"),
    ("LengthsTooLong", "wrote lengths [5, 5, 5, 5]; each must be within 1..4"),
    ("SoftTargets", "targets that are not bits"),
    ("ScoresPadding", "is 1 past a sequence's length"),
    ("FailsToFill", "_fill failed on a batch of 4: IndexError: index 4 is out of bounds"),
    ("Missing", f"{__name__} has no Missing"),
]


def test_the_tasks_of_the_paper_keep_the_contract():
    for name in tasks.names():
        assert isinstance(check_task_class(tasks.task_class(name), name), tasks.task_class(name))


def test_a_valid_task_of_ones_own_is_found_by_its_name_with_its_options():
    task = tasks.get(f"{__name__}:Echo", bits=3, max_length=6)
    assert type(task) is Echo and (task.input_size, task.difficulty["max_length"]) == (3, 6)
    assert tasks.name_of(Echo) == f"{__name__}:Echo"
    assert TrainSettings(task=Echo).task == f"{__name__}:Echo"  # a class is kept by the name that finds it
    assert TrainSettings.for_task(Echo).to_dict()["task"] == f"{__name__}:Echo"


@pytest.mark.parametrize("class_name, message", BROKEN)
def test_a_class_that_breaks_the_contract_is_a_value_error_naming_what_is_wrong(class_name, message):
    with pytest.raises(ValueError, match="^task " + __name__) as error:
        tasks.get(f"{__name__}:{class_name}")
    assert message in str(error.value)
    with pytest.raises(ValueError, match="task " + __name__):
        TrainSettings(task=f"{__name__}:{class_name}")


def test_names_that_do_not_import_say_why():
    with pytest.raises(ValueError, match=r"cannot import no_such_package.tasks \(ModuleNotFoundError"):
        tasks.get("no_such_package.tasks:Parity")
    with pytest.raises(ValueError, match="unknown task 'sorting'; choose from copy, .* or name a Task class"):
        tasks.get("sorting")


def test_a_class_that_cannot_be_found_again_by_its_name_is_refused():
    class Local(Echo):
        pass

    assert isinstance(tasks.get(Local), Local)  # a class object itself is fine where no name is stored
    with pytest.raises(ValueError, match="define Local at the top of an importable module"):
        TrainSettings(task=Local)


@pytest.mark.parametrize("argv, message", [
    (["train", f"{__name__}:NoThreshold"], "NoThreshold does not say when it is solved"),
    (["train", "no_such_package.tasks:Parity", "--steps", "5"], "cannot import no_such_package.tasks"),
    (["train", f"{__name__}:Missing"], f"{__name__} has no Missing"),
    (["train", "sorting"], "unknown task 'sorting'"),
    (["train", PARITY, "--min-items", "3"], f"--min-items does not apply to task {PARITY}"),
    (["sweep", f"{__name__}:SoftTargets", "--sweep-dir", "never", "--search", "lr=choice:1e-3"], "targets that are"),
])
def test_on_the_command_line_a_bad_task_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "never").exists() and not (tmp_path / "runs").exists()


def test_a_task_of_ones_own_gets_flags_for_its_difficulty_options(tmp_path):
    args = cli.build_parser(["train", PARITY]).parse_args(["train", PARITY, "--max-length", "6", "--lr", "0.01"])
    settings = train_flags.settings_from_args(args)
    assert (settings.task, settings.task_options, settings.lr) == (PARITY, {"max_length": 6}, 0.01)
    assert tasks.named_in(["train", PARITY, "no_such_package.tasks:X", "--lr", "1e-2"]) == [PARITY]


def test_a_sweep_of_a_task_of_ones_own_builds_its_trials_before_ray_starts(tmp_path):
    from ntm.commands.sweep import command, space

    argv = ["sweep", PARITY, "--sweep-dir", str(tmp_path / "s"), "--search", "max-length=grid:4,6", *PARITY_FLAGS]
    args = cli.build_parser(argv).parse_args(argv)
    spec = command.sweep_spec(args, tmp_path / "s")
    assert spec["task"] == PARITY and spec["task_path"] == str(REPO) and spec["trials"] == 2
    plan = command.trial_plan(spec)
    trial = space.trial_settings(plan.bases, {"max_length": 6}, plan.flags)
    assert (trial.task, trial.task_options, trial.model_options["controller_units"]) == (PARITY, {"max_length": 6}, 16)


# ----------------------------------------------------------------------------- the example, through the lab


@pytest.mark.slow
def test_the_parity_example_trains_to_solved_and_the_lab_serves_it(tmp_path, capsys):
    run = tmp_path / "parity"
    assert cli.main(["train", PARITY, *PARITY_FLAGS, "--run-dir", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("solved: fewer than 1 in 1,000 sequences") and "certified at step" in out, out
    assert "not solved" not in out, out
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == PARITY and config["settings"]["task"] == PARITY
    rows = json.loads((run / "eval.json").read_text())["rows"]
    assert [row["length"] for row in rows] == [5, 10, 20, 40]
    assert all(row["bit_errors"] < 0.01 for row in rows if row["in_training_range"])
    assert (run / "report.md").is_file() and "parity" in (run / "report.md").read_text()

    assert cli.main(["eval", str(run), "--lengths", "8", "--sequences", "200"]) == 0
    rows = {row["length"]: row for row in json.loads((run / "eval.json").read_text())["rows"]}
    assert rows[8]["sequences"] >= 200 and rows[5]["sequences"] > 3_000  # 8 merged in beside the certificate
    assert cli.main(["show", str(run), "--length", "10", "--out", str(tmp_path / "show.png")]) == 0
    assert "0 bit errors out of 10 scored bits" in capsys.readouterr().out
    assert (tmp_path / "show.png").stat().st_size > 10_000
    assert cli.main(["report", str(run)]) == 0

    # resumed from its run directory, where config.json names the task
    solved_at = load_run(run).step
    assert cli.main(["train", "--resume", str(run), "--no-until-solved", "--steps", str(solved_at + 20),
                     "--eval-lengths", "10", "--eval-sequences", "100", "--quiet"]) == 0
    assert load_run(run).step == solved_at + 20


def test_the_parity_example_trains_under_a_curriculum_from_python(tmp_path):
    from rich.console import Console

    from docs.examples.parity import Parity

    settings = TrainSettings.for_task(Parity, curriculum="levels", steps=60, eval_every=20, judge_sequences=100,
                                      model_options={"memory_slots": 8, "memory_width": 4, "controller_units": 16})
    assert settings.task == PARITY
    assert [level["max_length"] for level in Parity().curriculum_levels()] == [3, 5, 8, 10]
    result = train(settings, run_dir=tmp_path / "levels", console=Console(quiet=True), progress=False)
    assert result.step == 60 and result.compiles == 1  # every level is padded to the longest
    assert sys.modules["docs.examples.parity"].Parity is Parity

