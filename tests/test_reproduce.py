"""Tests of `ntm reproduce`: every pair trains within its budget, the page holds our figures beside the
paper's with the curves and pictures, and a second run skips what is done."""

import json

import pytest

from ntm import tasks
from ntm.commands import cli

SMALL_DEFAULTS = {
    "ntm": {"model_options": {"memory_slots": 16, "memory_width": 8, "controller_units": 32},
            "task_options": {"max_length": 3}, "judge_sequences": 100},
    "lstm": {"model_options": {"layers": 1, "units": 32}, "task_options": {"max_length": 3}, "judge_sequences": 100},
}


@pytest.mark.slow  # two runs, each trained for 3 s, and the results page
def test_reproduce_writes_the_results_page_and_resumes(tmp_path, capsys, monkeypatch):
    # The machinery on small machines and short sequences; the real defaults are tested in test_training.
    copy = type(tasks.get("copy"))
    monkeypatch.setattr(copy, "TRAINING_DEFAULTS", SMALL_DEFAULTS)
    monkeypatch.setattr(copy, "DEFAULT_EVAL_VALUES", (2, 5))
    monkeypatch.setattr(copy, "PICTURE_VALUES", (5,))
    out, page = tmp_path / "runs", tmp_path / "docs" / "results.md"
    argv = ["reproduce", "--out", str(out), "--page", str(page), "--tasks", "copy", "--models", "ntm,lstm",
            "--minutes", "0.05", "--eval-sequences", "100"]
    assert cli.main(argv) == 0
    records = json.loads((out / "results.json").read_text())
    assert sorted(records) == ["copy-lstm", "copy-ntm"]
    assert [row["length"] for row in records["copy-ntm"]["rows"]] == [2, 3, 5]  # 3: the stop rule's own row
    assert all(record["rows"][-1]["sequences"] == 100 for record in records.values())
    assert records["copy-ntm"]["seconds"] >= 0.05 * 60  # stopped by the time budget, not before
    text = page.read_text()
    assert "| ntm |" in text and "| lstm |" in text and "200,000 sequences" in text
    assert (page.parent / "results" / "copy-learning.png").is_file()
    assert (page.parent / "results" / "copy-ntm-5.png").is_file()
    trained = (out / "copy-ntm" / "metrics.jsonl").stat().st_mtime
    assert cli.main(argv) == 0  # everything recorded: nothing retrains
    assert (out / "copy-ntm" / "metrics.jsonl").stat().st_mtime == trained
    assert "results page" in capsys.readouterr().out
