"""Tests of the command line as a new user meets it: evaluations that keep earlier tables, help that
shows each task's own defaults, settings that cannot take effect refused (in the library and on the
command line, in the flags the user typed), tables that fit 80 columns when piped, messages in the
user's terms, a documented evaluation seed, `ntm --version`, `ntm compare -o`, and README names that exist."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import ntm
from ntm import evaluate
from ntm.commands import cli, train_flags
from ntm.evaluate import evaluate_model, evaluate_run, load_run, merge_eval, read_eval
from ntm.plots import runs
from ntm.training import TrainSettings, train
from ntm.turing.config import NTMConfig

QUIET = Console(stderr=True, quiet=True)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny NTM trained 10 steps on copy of lengths 1-3."""
    run_dir = tmp_path_factory.mktemp("usage") / "run"
    settings = TrainSettings(task="copy", task_options={"max_length": 3}, batch_size=8, steps=10,
                             until_solved=False, log_every=5, judge_sequences=100,
                             model_options={"memory_slots": 16, "memory_width": 8, "controller_units": 32})
    train(settings, run_dir=run_dir, console=QUIET, progress=False)
    return run_dir


def main_of(argv, capsys):
    """(exit status, stdout, stderr) of `ntm ARGV` run in this process."""
    try:
        status = cli.main(argv)
    except SystemExit as exit:  # --help and --version
        status = exit.code or 0
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line(text: str) -> str:
    return " ".join(text.split())


def help_entries(text: str) -> dict[str, str]:
    """{'--lr': 'FLOAT learning rate (default 0.001)', ...}: each option of an argparse help, on one line."""
    entries, current = {}, None
    for line in text.splitlines():
        match = re.match(r"^  (?:-\w, )?(--[\w-]+)(.*)", line)
        if match:
            current = match.group(1)
            entries[current] = match.group(2)
        elif current and line.startswith("    "):
            entries[current] += " " + line
        else:
            current = None
    return {name: one_line(value) for name, value in entries.items()}


# ----------------------------------------------------------------------------- 1. nothing overwritten


def test_an_evaluation_keeps_earlier_tables_and_compare_and_report_read_them_all(tiny_run, tmp_path, capsys):
    _, first = evaluate_run(tiny_run, [2, 4], sequences=100)  # as `ntm train` leaves it
    status, out, err = main_of(["eval", str(tiny_run), "--lengths", "4,6", "--sequences", "100", "--seed", "1"], capsys)
    assert status == 0, err
    saved = read_eval(tiny_run)
    assert [(row["length"], row["eval_seed"], row["step"]) for row in saved["rows"]] == [(2, 0, 10), (4, 1, 10),
                                                                                         (6, 1, 10)]
    assert saved["rows"][0] == json.loads(json.dumps(first[0]))  # length 2 untouched
    assert [(row["length"], row["eval_seed"]) for row in saved["replaced"]] == [(4, 0)]  # nothing lost
    assert "now holds length 2, 4, 6" in one_line(out)
    # compare and report read the merged table: the training's length 2 is still there.
    status, out, err = main_of(["compare", str(tiny_run), "-o", str(tmp_path / "mine.png")], capsys)
    assert status == 0, err
    assert (tmp_path / "mine.png").read_bytes()[:4] == b"\x89PNG"
    assert not Path("compare.png").exists()
    assert f"{first[0]['bit_errors']:.3f}" in out and re.search(r"│\s+6 │", out)
    report = runs.write_report(tiny_run).read_text()
    assert "| 2 | " in report and "| 4 | " in report and "| 6 | " in report


def test_merging_keeps_old_rows_marks_their_step_and_replaces_only_the_same_value(tmp_path):
    old_format = {"task": "copy", "model": "ntm", "key": "length", "step": 100,
                  "rows": [{"length": 10, "cost": 1.0}, {"length": 20, "cost": 2.0}]}
    (tmp_path / "eval.json").write_text(json.dumps(old_format))
    saved = read_eval(tmp_path)
    assert [row["step"] for row in saved["rows"]] == [100, 100]  # rows before rows kept their own step
    merged = merge_eval(saved, [{"length": 20, "cost": 0.5, "step": 300}, {"length": 5, "cost": 0.1, "step": 300}],
                        "copy", "ntm", "length", 300)
    assert [(row["length"], row["cost"]) for row in merged["rows"]] == [(5, 0.1), (10, 1.0), (20, 0.5)]
    assert merged["replaced"] == [{"length": 20, "cost": 2.0, "step": 100, "eval_seed": None}]
    assert evaluate.stale_rows(merged, 300) == {100: [10]}
    other_task = merge_eval(merged, [{"items": 6, "cost": 0.0, "step": 1}], "associative_recall", "ntm", "items", 1)
    assert [row["items"] for row in other_task["rows"]] == [6] and len(other_task["replaced"]) == 4


# ----------------------------------------------------------------------------- 6. the evaluation seed


def test_the_default_evaluation_seed_draws_the_same_sequences_and_another_seed_draws_others(tiny_run):
    run = load_run(tiny_run)
    again = [evaluate_model(run.model, run.task, [3], 100)[0]["cost"] for _ in range(2)]
    other = evaluate_model(run.model, run.task, [3], 100, seed=5)[0]["cost"]
    assert again[0] == again[1] and other != again[0]
    first = evaluate.eval_rng(0, 3).integers(0, 2**31, 4)
    assert np.array_equal(first, evaluate.eval_rng(0, 3).integers(0, 2**31, 4))
    assert not np.array_equal(first, evaluate.eval_rng(1, 3).integers(0, 2**31, 4))
    with pytest.raises(ValueError, match="evaluation seed must be an integer >= 0"):
        evaluate.eval_rng(-1, 3)


# ----------------------------------------------------------------------------- 2. help that tells the truth


@pytest.mark.parametrize("task", ["copy", "repeat_copy", "associative_recall", "ngrams", "priority_sort"])
def test_train_task_help_shows_that_tasks_own_defaults(task, capsys):
    from ntm import tasks

    status, out, _ = main_of(["train", task, "--help"], capsys)
    assert status == 0
    entries = help_entries(out)
    settings = TrainSettings.for_task(task)
    for name in ("lr", "batch_size", "max_steps", "eval_every", "checkpoint_every"):
        assert entries[train_flags.flag(name)].endswith(f"(default {train_flags.shown(getattr(settings, name))})"), name
    for key, value in tasks.get(task).difficulty.items():
        assert entries[train_flags.flag(key)].endswith(f"in training (default {value})") or \
            entries[train_flags.flag(key)].endswith(f"(default {value})"), key
    others = {key for name in tasks.names() for key in tasks.get(name).difficulty} - set(tasks.get(task).difficulty)
    assert not others & set(entries)


def test_train_help_names_every_difficulty_flags_tasks_and_defaults(capsys):
    status, out, _ = main_of(["train", "--help"], capsys)
    text = one_line(out)
    assert status == 0
    assert "--min-items INT minimum items in training (associative_recall 2, priority_sort 20)" in text
    assert "--max-repeats INT most repeats in training (repeat_copy 10)" in text
    assert "--num-outputs INT items written out" in text and "(priority_sort 16)" in text
    assert "--lr FLOAT learning rate (default 0.003; repeat_copy 0.001)" in text
    assert "--memory-slots INT memory slots N (dnc: 32; ntm: 128 (ngrams 64))" in text
    status, out, _ = main_of(["train", "ngrams", "--model", "lstm", "--help"], capsys)
    text = one_line(out)
    assert "--units INT units per LSTM layer (default 128)" in text and "--memory-slots" not in text


# ----------------------------------------------------------------------------- 3. settings without effect


@pytest.mark.parametrize("make,names", [
    (lambda: NTMConfig(input_size=9, output_size=8, controller="lstm", controller_activation="relu"),
     ("controller_activation='relu'", "controller='lstm'")),
    (lambda: NTMConfig(input_size=9, output_size=8, memory_init="random", memory_init_value=0.5),
     ("memory_init_value=0.5", "memory_init='random'")),
    (lambda: TrainSettings(momentum=0.5), ("momentum=0.5", "optimizer='adam'")),
    (lambda: TrainSettings(model="lstm", model_options={"memory_slots": 8}), ("memory_slots", "model='lstm'")),
    (lambda: TrainSettings(model="dnc", model_options={"controller": "feedforward"}), ("controller", "model='dnc'")),
    (lambda: TrainSettings(task="copy", task_options={"min_repeats": 2}), ("min_repeats", "copy")),
    (lambda: TrainSettings(steps=3, sequences=4), ("steps=3", "sequences=4")),
])
def test_the_library_refuses_settings_that_cannot_take_effect_naming_both(make, names):
    with pytest.raises(ValueError) as error:
        make()
    assert all(name in str(error.value) for name in names), str(error.value)


def test_the_same_settings_are_accepted_where_they_take_effect():
    assert NTMConfig(input_size=9, output_size=8, controller="feedforward", controller_activation="relu")
    assert NTMConfig(input_size=9, output_size=8, memory_init="learned", memory_init_value=0.5)
    assert NTMConfig(input_size=9, output_size=8, memory_init="random", memory_init_value=0.5,
                     learn_initial_reads=True)
    assert TrainSettings(optimizer="rmsprop", momentum=0.5).momentum == 0.5
    assert TrainSettings.for_task("ngrams", "lstm").model_options["units"] == 128


@pytest.mark.parametrize("argv,expected", [
    (["train", "copy", "--controller-activation", "relu"],
     "ntm train: --controller-activation relu has no effect with --controller lstm"),
    (["train", "copy", "--memory-init", "random", "--memory-init-value", "0.5"],
     "--memory-init-value 0.5 has no effect with --memory-init random and --no-learn-initial-reads"),
    (["train", "copy", "--momentum", "0.5"], "--momentum 0.5 has no effect with --optimizer adam"),
    (["train", "copy", "--steps", "5", "--max-steps", "10"], "--max-steps has no effect with --steps"),
    (["train", "copy", "--shift-range", "129"], "--shift-range must be at most --memory-slots (128), got 129"),
    (["train", "priority_sort", "--num-outputs", "30"], "--num-outputs (30) must not exceed --min-items (20)"),
    (["train", "copy", "--steps", "3", "--sequences", "4"], "--steps 3 and --sequences 4"),
    (["train", "copy", "--model", "dnc", "--write-heads", "2"], "--write-heads must be 1"),
    (["eval", "RUN", "--seed", "-1"], "--seed must be >= 0"),
])
def test_the_command_line_refuses_them_in_one_line_with_the_flags_typed(argv, expected, tiny_run, capsys):
    argv = [str(tiny_run) if arg == "RUN" else arg for arg in argv]
    status, out, err = main_of(argv, capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert expected in err and "_" not in err.split(":", 1)[-1], err  # flags, not field names


def test_library_words_become_flags_but_plain_words_stay():
    fields = {"memory_slots", "steps", "sequences", "learn_initial_reads", "lr", "controller"}
    assert train_flags.in_flag_terms("lr must be positive; memory_slots=8 and steps", fields) == \
        "--lr must be positive; --memory-slots 8 and steps"
    assert train_flags.in_flag_terms("with controller='lstm' and learn_initial_reads=False", fields) == \
        "with --controller lstm and --no-learn-initial-reads"
    assert train_flags.in_flag_terms("1,000 sequences", fields) == "1,000 sequences"


# ----------------------------------------------------------------------------- 5. messages in the user's terms


def test_a_file_where_a_directory_belongs_is_named_as_such(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("")
    for argv, expected in ((["eval", "afile"], "'afile' is a file, not a run directory"),
                           (["train", "copy", "--run-dir", "afile"], "--run-dir afile is a file, not a directory"),
                           (["train", "copy", "--run-dir", "afile/run"], "(afile is a file)"),
                           (["train", "--resume", "afile"], "--resume afile is a file, not a directory")):
        status, _, err = main_of(argv, capsys)
        assert status == 2 and expected in err and "Errno" not in err, err
    assert cli.os_error_text(FileExistsError(17, "File exists", "afile")) == "afile is a file, not a directory"
    assert cli.os_error_text(NotADirectoryError(20, "Not a directory", "afile/x")) == "afile is a file, not a directory"
    assert cli.os_error_text(PermissionError(13, "Permission denied", "/root/x")) == "/root/x: Permission denied"


# ----------------------------------------------------------------------------- 4. 80 columns when piped


def piped(*args) -> str:
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    result = subprocess.run([sys.executable, "-m", "ntm.commands.cli", *args], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_ntm_pretrained_fits_80_columns_when_piped_and_never_cuts_a_name():
    from ntm import saving

    out = piped("pretrained")
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out
    for name in saving.read_index():
        assert re.search(rf"(^|[│ ]){name} ", out, re.M), name


def rendered(tables) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=80)
    for table in tables:
        console.print(table)
    return buffer.getvalue()


def test_compare_tables_fit_80_columns_heading_runs_by_label_or_by_number_never_cut():
    rows = [{"length": 10, "cost": 1.5, "bit_errors": 0.25}, {"length": 120, "cost": 12345.678, "bit_errors": 99.5}]
    short = rendered(runs.eval_comparison_tables("length", {"lstm": rows, "dnc, seed=1": rows}, "copy"))
    assert "│ length │" in short.replace("┃", "│") and "dnc, seed=1" in short and "lstm" in short
    labels = ["ntm, lr=0.001, memory_init=learned", "ntm, lr=0.003, memory_init=constant", "lstm", "dnc, seed=1",
              "ntm, lr=0.01", "ntm, lr=0.03"]
    text = rendered(runs.eval_comparison_tables("length", {label: rows for label in labels}, "copy"))
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    assert all(f"[{number}]" in text for number in range(1, 7)) and "memory_init" not in text
    assert text.count("12345.678") == 6 and text.count("99.500") == 6  # some runs in a further table


def test_help_fits_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    tasks_help = [["train", task, "--help"] for task in ("copy", "repeat_copy", "associative_recall", "ngrams",
                                                         "priority_sort")]
    for argv in (["--help"], ["train", "--help"], *tasks_help, ["train", "ngrams", "--model", "lstm", "--help"],
                 ["eval", "--help"], ["compare", "--help"], ["pretrained", "--help"], ["reproduce", "--help"],
                 ["sweep", "--help"]):
        status, out, _ = main_of(argv, capsys)
        assert status == 0 and max(len(line) for line in out.splitlines()) <= 80, (argv, out)


# ----------------------------------------------------------------------------- 7. small gaps


def test_ntm_version(capsys):
    status, out, _ = main_of(["--version"], capsys)
    assert status == 0 and out.strip().startswith(f"ntm {ntm.__version__}")


def test_every_public_name_in_the_readme_and_guide_exists():
    import importlib

    for page in (ROOT / "README.md", ROOT / "docs" / "using.md"):
        for name in sorted(set(re.findall(r"\bntm(?:\.[A-Za-z_]\w*)+", page.read_text()))):
            parts = name.split(".")
            target = importlib.import_module("ntm")
            for depth, part in enumerate(parts[1:], start=2):
                if not hasattr(target, part):
                    target = importlib.import_module(".".join(parts[:depth]))  # a submodule
                else:
                    target = getattr(target, part)
            assert target is not None, f"{page.name}: {name}"


def test_eval_tables_fit_80_columns_with_their_widest_figures():
    from ntm import tasks
    from ntm.evaluate import eval_table

    def rate_row(length, failures, sequences, errors, inside):
        return {"length": length, "failures": failures, "sequences": sequences, "failure_rate": failures / sequences,
                "failure_rate_interval": [max(failures - 4, 0) / sequences, min(failures + 4, sequences) / sequences],
                "bit_errors": errors, "bit_errors_interval": [errors * 0.8765, errors * 1.1234],
                "end_marker_errors": 1.0754, "cost": 12345.678, "solved": False, "in_training_range": inside,
                "source": "stop rule" if inside else "evaluation"}

    rows = [rate_row(10, 0, 12_345, 0.00123, True), rate_row(20, 96, 1000, 0.4712, False),
            rate_row(120, 1000, 1000, 1234.5678, False)]
    mean_rows = [{"items": 40, "sequences": 1000, "bit_errors": 108.43, "bit_errors_interval": [107.81, 109.02],
                  "cost": 12345.678, "solved": False, "in_training_range": False, "source": "evaluation"}]
    out = rendered([eval_table(rows, tasks.get("repeat_copy"), "ntm on repeat_copy, step 150000, evaluation seed 0"),
                    eval_table(mean_rows, tasks.get("priority_sort"), "ntm on priority_sort")])
    assert max(len(line) for line in out.splitlines()) <= 80 and "…" not in out, out
    assert "120 *" in out and "1,000 [996,1,000]" in out and "1,235 " in out and "0/12,345" in out and "12,346" in out
