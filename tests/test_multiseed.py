"""Tests of training several seeds at once: the vmapped program equals separate runs, seed by seed."""

import json

import jax
import numpy as np
from flax import nnx
from rich.console import Console

from ntm import checkpoints
from ntm.evaluate import evaluate_run, load_run
from ntm.multiseed import train_seeds
from ntm.train import TrainSettings, train

QUIET = Console(stderr=True, quiet=True)


def settings(**changes):
    values = dict(task="copy", task_options={"max_length": 3},
                  model_options={"memory_slots": 16, "memory_width": 8, "controller_units": 32},
                  batch_size=4, steps=15, until_solved=False, curriculum=False, log_every=5, checkpoint_every=100)
    values.update(changes)
    return TrainSettings(**values)


def test_seeds_trained_together_equal_the_same_seeds_trained_alone(tmp_path):
    results = train_seeds(settings(seed=3), 2, run_dir=tmp_path / "group", console=QUIET, progress=False)
    assert [r.seed for r in results] == [3, 4]
    for result in results:
        alone = train(settings(seed=result.seed), run_dir=tmp_path / f"alone-{result.seed}", console=QUIET, progress=False)
        together_params = nnx.state(load_run(result.run_dir).model, nnx.Param)
        alone_params = nnx.state(load_run(alone.run_dir).model, nnx.Param)
        for a, b in zip(jax.tree.leaves(together_params), jax.tree.leaves(alone_params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
        together_rows = [r for r in checkpoints.read_metrics(result.run_dir) if "event" not in r]
        alone_rows = [r for r in checkpoints.read_metrics(alone.run_dir) if "event" not in r]
        assert [r["step"] for r in together_rows] == [r["step"] for r in alone_rows] == [5, 10, 15]
        np.testing.assert_allclose([r["cost"] for r in together_rows], [r["cost"] for r in alone_rows], rtol=1e-3)
    summary = json.loads((tmp_path / "group" / "seeds.json").read_text())
    assert summary["seeds"] == [3, 4] and summary["steps"] == 15


def test_each_seed_directory_is_an_ordinary_run(tmp_path):
    results = train_seeds(settings(steps=10), 2, run_dir=tmp_path / "group", console=QUIET, progress=False)
    _, rows = evaluate_run(results[1].run_dir, [2])
    assert rows[0]["length"] == 2 and np.isfinite(rows[0]["cost"])
    resumed = train(run_dir=results[1].run_dir, resume=True, budget={"steps": 12}, console=QUIET, progress=False)
    assert resumed.step == 12


def test_cli_trains_seeds_at_once_and_reports_each(tmp_path):
    import subprocess
    import sys

    run_dir = tmp_path / "cli-seeds"
    result = subprocess.run(
        [sys.executable, "-m", "ntm.cli", "train", "copy", "--seeds", "2", "--seed", "5", "--max-length", "3",
         "--memory-slots", "16", "--memory-width", "8", "--controller-units", "32", "--batch-size", "4",
         "--steps", "10", "--no-until-solved", "--run-dir", str(run_dir), "--eval-lengths", "2", "--quiet"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "2 seeds of ntm on copy" in result.stdout
    assert sorted(p.name for p in run_dir.iterdir()) == ["seed-5", "seed-6", "seeds.json"]
    # the report goes to the best seed only: none solved here, so the one with the lowest last cost
    reports = [seed for seed in (5, 6) if (run_dir / f"seed-{seed}" / "report.md").is_file()]
    assert len(reports) == 1 and f"seed {reports[0]} (lowest cost)" in result.stdout
    assert json.loads((run_dir / "seeds.json").read_text())["seeds"] == [5, 6]
