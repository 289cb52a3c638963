"""Tests of the typed records of metrics.jsonl: each row the loop writes reads back as the record it was,
rows of older runs (fewer fields) still read, and unknown events are left out."""

import json
import math

from ntm.training.records import (
    Diverged,
    HeldOut,
    LevelUp,
    NanRestore,
    NonFinite,
    Solved,
    StepStats,
    Training,
    of_kind,
    parse_records,
    window_means,
)

WRITTEN = [
    Training(10, sequences=80, cost=16.7, bit_errors=7.7, grad_norm=1.3, level=0, lr=0.003, skipped=1, time=18.1,
             seq_per_s=1219.0),
    NonFinite(11, skipped=2),
    NanRestore(16, restored_step=10, lr=0.0015),
    HeldOut(20, sequences=160, level=1, time=19.5, verdict={"held_out_sequences": 100, "cost": 3.5, "bit_errors": 0.25,
                                                           "solved": False, "cost_interval": [3.0, 4.0]}),
    LevelUp(20, level=2, sequences=160, difficulty={"min_length": 1, "max_length": 4}),
    Solved(40, sequences=320, time=30.0),
    Diverged(50, skipped=9, restores=5),
]


def test_every_record_reads_back_as_written_through_json():
    lines = [json.dumps(record.to_json()) for record in WRITTEN]
    assert parse_records([json.loads(line) for line in lines]) == WRITTEN
    # The format runs have always had: events carry their kind right after the step, training rows none.
    assert list(WRITTEN[2].to_json()) == ["step", "event", "restored_step", "lr"]
    assert list(WRITTEN[0].to_json())[:3] == ["step", "sequences", "cost"] and "event" not in WRITTEN[0].to_json()
    assert WRITTEN[3].to_json()["cost_interval"] == [3.0, 4.0] and WRITTEN[3].to_json()["event"] == "held_out"


def test_held_out_figures_come_from_the_verdict_and_kinds_filter():
    check = of_kind(WRITTEN, HeldOut)[0]
    assert (check.cost, check.bit_errors, check.solved) == (3.5, 0.25, False)
    assert [type(r) for r in of_kind(WRITTEN, Training)] == [Training]


def test_older_rows_read_and_unknown_events_are_left_out():
    rows = [{"step": 5, "sequences": 40, "cost": 2.0, "bit_errors": 1.0},  # no lr, level, seq_per_s
            {"step": 6, "event": "something_new", "x": 1}, {"event": "held_out"}]
    records = parse_records(rows)
    assert len(records) == 1 and records[0].cost == 2.0 and math.isnan(records[0].lr)


def test_window_means_skip_the_steps_whose_update_was_discarded():
    window = [StepStats(1.0, 2.0, 1.0, 3.0, True), StepStats(math.nan, math.nan, math.nan, math.nan, False),
              StepStats(1.0, 4.0, 3.0, 5.0, True)]
    assert window_means(window) == {"cost": 3.0, "bit_errors": 2.0, "grad_norm": 4.0}
    assert all(math.isnan(v) for v in window_means(window[1:2]).values())
