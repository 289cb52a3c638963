"""What a run writes as it goes: metrics.jsonl and TensorBoard per seed (typed records, `ntm.training.records`),
and the live progress bar."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ntm.rundir import METRICS_FILE, RunDirectoryError
from ntm.training.records import HeldOut, Record


class MetricsLog:
    """One seed's metrics.jsonl and TensorBoard files, written side by side."""

    def __init__(self, run_dir: Path):
        from tensorboardX import SummaryWriter

        self.path = Path(run_dir) / METRICS_FILE
        try:
            self.file = self.path.open("a")
        except OSError as error:
            raise RunDirectoryError(f"cannot write {self.path}: {error.strerror or error}") from None
        self.writer = SummaryWriter(logdir=str(Path(run_dir) / "tb"))

    def write(self, record: Record) -> None:
        """One line of metrics.jsonl (flushed: a kill loses at most the line being written), and its scalars."""
        row = record.to_json()
        prefix = "held_out" if isinstance(record, HeldOut) else "train"
        try:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        except OSError as error:
            raise RunDirectoryError(f"cannot write {self.path}: {error.strerror or error}") from None
        for name, value in row.items():
            if (name not in ("step", "event", "seed") and isinstance(value, (int, float))
                    and not isinstance(value, bool) and math.isfinite(value)):
                self.writer.add_scalar(f"{prefix}/{name}", value, row["step"])

    def close(self) -> None:
        self.file.close()
        self.writer.close()


def make_progress(console: Console, enabled: bool) -> Progress:
    """A one-line live bar; compact so it fits an 80-column terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=12),
        TextColumn("{task.completed:>5.0f} steps {task.fields[sequences]:>7} seq"),
        TextColumn("cost {task.fields[cost]:.3g} err {task.fields[errors]:.3g}"),
        TextColumn("{task.fields[status]}"),
        TextColumn("{task.fields[speed]:.0f} seq/s"),
        TimeRemainingColumn(compact=True),
        console=console,
        disable=not enabled,
    )
