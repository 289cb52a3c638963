"""Tests of training: it learns, resumes exactly (also after SIGKILL), and never lets a NaN through."""

import json
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from rich.console import Console

from ntm import checkpoints, tasks
from ntm.evaluate import evaluate_run, load_run
from ntm.train import TrainSettings, build_model, make_optimizer, make_train_step, train

QUIET = Console(stderr=True, quiet=True)
TINY_NTM = {"memory_slots": 16, "memory_width": 8, "controller_units": 32}


def tiny_settings(**changes):
    values = dict(task="copy", task_options={"max_length": 3}, model_options=TINY_NTM, batch_size=8,
                  steps=20, until_solved=False, curriculum=False, log_every=5, checkpoint_every=10)
    values.update(changes)
    return TrainSettings(**values)


def params_of(run_dir):
    return nnx.state(load_run(run_dir).model, nnx.Param)


def test_ntm_learns_copy_of_lengths_one_to_five_until_solved(tmp_path):
    settings = TrainSettings(task="copy", task_options={"max_length": 5}, until_solved=True, max_steps=3000,
                             eval_every=50, checkpoint_every=100000)
    result = train(settings, run_dir=tmp_path / "run", console=QUIET, progress=False)
    assert result.solved, f"not solved after {result.step} steps: {result.last}"
    assert result.compiles == 1  # lengths 1-5 are padded to one shape: never recompiled
    held_out = [row for row in checkpoints.read_metrics(tmp_path / "run") if row.get("event") == "held_out"]
    assert held_out[-1]["bit_errors"] < 0.01
    _, rows = evaluate_run(tmp_path / "run", [5], batch_size=64)
    assert rows[0]["bit_errors"] < 0.1


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    train(tiny_settings(steps=30), run_dir=tmp_path / "straight", console=QUIET, progress=False)
    train(tiny_settings(steps=20), run_dir=tmp_path / "split", console=QUIET, progress=False)
    result = train(run_dir=tmp_path / "split", resume=True, budget={"steps": 30}, console=QUIET, progress=False)
    assert result.step == 30 and result.sequences == 240
    straight, split = params_of(tmp_path / "straight"), params_of(tmp_path / "split")
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(split)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    rows = lambda d: [(r["step"], round(r["cost"], 4)) for r in checkpoints.read_metrics(d) if "event" not in r]
    assert rows(tmp_path / "straight") == rows(tmp_path / "split")


def test_sigkill_between_checkpoints_then_resume_continues_from_the_last_checkpoint(tmp_path):
    run_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "ntm.cli", "train", "copy", "--max-length", "3", "--memory-slots", "16",
               "--memory-width", "8", "--controller-units", "32", "--batch-size", "8", "--steps", "100000",
               "--no-until-solved", "--no-curriculum", "--checkpoint-every", "25", "--log-every", "5",
               "--run-dir", str(run_dir), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            done = [s for s in (run_dir / "checkpoints").glob("*") if s.name.isdigit()] if run_dir.exists() else []
            if any(int(s.name) >= 50 for s in done):
                break
            time.sleep(0.2)
        time.sleep(0.3)  # land between checkpoints, mid-write of the log
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    saved = checkpoints.Checkpoints(run_dir).steps()
    last = max(saved)
    assert last >= 50
    logged_before = max(r["step"] for r in checkpoints.read_metrics(run_dir))
    result = train(run_dir=run_dir, resume=True, budget={"steps": last + 10}, console=QUIET, progress=False)
    assert result.step == last + 10
    steps = [r["step"] for r in checkpoints.read_metrics(run_dir) if "event" not in r]
    assert steps == list(range(5, last + 11, 5)), (logged_before, last)


def test_nan_gradient_is_skipped_and_reported():
    task = tasks.get("copy", max_length=3)
    settings = tiny_settings()
    model, _ = build_model(settings, task)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = make_optimizer(settings)
    opt_state = tx.init(params)
    step = make_train_step(graphdef, tx)
    batch = task.sample(np.random.default_rng(0), 4)
    before = jax.tree.map(np.asarray, params)
    poisoned = batch._replace(inputs=batch.inputs.copy())
    poisoned.inputs[0, 0, 0] = np.nan
    params, opt_state, stats = step(params, opt_state, poisoned, jax.random.key(0))
    assert not bool(stats["finite"])
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, np.asarray(b))
    params, opt_state, stats = step(params, opt_state, batch, jax.random.key(0))
    assert bool(stats["finite"])
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(params)))


def test_repeated_nan_steps_restore_the_checkpoint_and_lower_the_learning_rate(tmp_path, monkeypatch):
    task_class = type(tasks.get("copy"))
    original = task_class.sample
    calls = {"n": 0}

    def sample_with_poison(self, rng, batch_size, **kw):
        batch = original(self, rng, batch_size, **kw)
        if batch_size != settings.batch_size:  # a held-out batch, not a training step
            return batch
        calls["n"] += 1
        if 12 <= calls["n"] < 20:  # eight poisoned steps in a row: 12..19
            batch.inputs[:] = np.nan
        return batch

    settings = tiny_settings(steps=30, nan_patience=5, log_every=1)
    monkeypatch.setattr(task_class, "sample", sample_with_poison)
    result = train(settings, run_dir=tmp_path / "nan", console=QUIET, progress=False)
    rows = checkpoints.read_metrics(tmp_path / "nan")
    events = [r for r in rows if r.get("event") == "nan_restore"]
    assert len(events) == 1 and events[0]["restored_step"] == 10 and events[0]["lr"] == pytest.approx(settings.lr / 2)
    assert max(r["skipped"] for r in rows if "skipped" in r) == 8
    assert all(np.isfinite(r["cost"]) for r in rows if "event" not in r and r["step"] > 20)
    assert result.step == 30
    assert load_run(tmp_path / "nan").meta["lr"] == pytest.approx(settings.lr / 2)
    for leaf in jax.tree.leaves(params_of(tmp_path / "nan")):
        assert np.isfinite(np.asarray(leaf)).all()


def test_lstm_baseline_shapes_masking_and_short_copy_run_lowers_cost(tmp_path):
    from ntm.baselines import LSTMConfig, LSTMModel

    model = LSTMModel(LSTMConfig(input_size=4, output_size=3, layers=2, units=16), rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 4)), jnp.float32)
    logits = model(x, lengths=jnp.array([6, 3]))
    assert logits.shape == (2, 6, 3)
    np.testing.assert_allclose(logits[1, :3], model(x[1:2, :3])[0], atol=1e-5)
    np.testing.assert_allclose(logits[1, 3:], 0.0)
    with pytest.raises(ValueError, match="LSTM inputs must have shape"):
        model(jnp.zeros((2, 6, 5)))
    settings = tiny_settings(model="lstm", model_options={"layers": 1, "units": 64}, steps=150, log_every=10,
                             batch_size=16, lr=3e-3)
    train(settings, run_dir=tmp_path / "lstm", console=QUIET, progress=False)
    costs = [r["cost"] for r in checkpoints.read_metrics(tmp_path / "lstm") if "event" not in r]
    assert np.mean(costs[-3:]) < 0.7 * np.mean(costs[:2])


def test_curriculum_levels_are_logged_and_saved_in_checkpoints(tmp_path):
    settings = tiny_settings(task_options={"max_length": 4}, curriculum=True, until_solved=True, steps=1500,
                             eval_every=25, checkpoint_every=100000, batch_size=16)
    result = train(settings, run_dir=tmp_path / "cur", console=QUIET, progress=False)
    levels = [r for r in checkpoints.read_metrics(tmp_path / "cur") if r.get("event") == "level"]
    assert [r["level"] for r in levels] == list(range(1, len(levels) + 1))
    assert levels and levels[0]["difficulty"]["max_length"] == 2
    assert result.compiles == len(levels) + 1  # one training-step compile per level's batch shape
    assert load_run(tmp_path / "cur").meta["level"] == result.level == len(levels)


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ntm.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["train", "sorting"], "invalid choice: 'sorting'"),
        (["train", "copy", "--lr", "fast"], "--lr: invalid float value"),
        (["train", "copy", "--lr", "-1"], "lr must be a positive number"),
        (["train", "copy", "--max-length", "0"], "max_length must be an integer >= 1"),
        (["train", "copy", "--min-items", "3"], "--min-items does not apply to task copy"),
        (["train", "copy", "--model", "lstm", "--memory-slots", "8"], "--memory-slots does not apply to --model lstm"),
        (["train", "copy", "--shift-range", "2"], "shift_range must be odd"),
        (["train"], "give a TASK"),
        (["eval", "/nonexistent/run"], "does not exist"),
        (["eval", "."], "not an ntm run directory"),
    ],
)
def test_bad_command_lines_exit_2_with_one_line(args, expected, tmp_path):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr


def test_corrupt_or_mismatched_run_directories_exit_2_and_keep_files(tmp_path):
    run_dir = tmp_path / "run"
    train(tiny_settings(steps=10), run_dir=run_dir, console=QUIET, progress=False)
    config = json.loads((run_dir / "config.json").read_text())

    bad_eval = run_cli("eval", str(run_dir), "--lengths", "3,x")
    assert bad_eval.returncode == 2 and "--lengths" in bad_eval.stderr

    mismatched = dict(config, settings=dict(config["settings"], model_options={**TINY_NTM, "memory_slots": 12}))
    mismatched["model_config"] = dict(config["model_config"], memory_slots=12)
    (run_dir / "config.json").write_text(json.dumps(mismatched))
    result = run_cli("eval", str(run_dir))
    assert result.returncode == 2 and "could be restored" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("train", "--resume", str(run_dir), "--steps", "20")
    assert result.returncode == 2 and "could be restored" in result.stderr
    assert sorted(checkpoints.Checkpoints(run_dir).steps()) == [0, 10]

    (run_dir / "config.json").write_text("{not json")
    result = run_cli("eval", str(run_dir))
    assert result.returncode == 2 and "corrupt" in result.stderr
    result = run_cli("train", "--resume", str(run_dir), "--memory-slots", "8")
    assert result.returncode == 2 and "--resume continues the saved run" in result.stderr
    assert (run_dir / "checkpoints" / "10").is_dir()


def test_cli_train_and_eval_end_to_end(tmp_path):
    run_dir = tmp_path / "cli"
    result = run_cli("train", "copy", "--max-length", "3", "--memory-slots", "16", "--controller-units", "32",
                     "--batch-size", "8", "--steps", "20", "--no-curriculum", "--run-dir", str(run_dir),
                     "--eval-lengths", "2,4", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "run directory" in result.stdout and "length" in result.stdout
    saved = json.loads((run_dir / "eval.json").read_text())
    assert [row["length"] for row in saved["rows"]] == [2, 4]
    result = run_cli("eval", str(run_dir), "--lengths", "6")
    assert result.returncode == 0, result.stderr
    assert [row["length"] for row in json.loads((run_dir / "eval.json").read_text())["rows"]] == [6]
    result = run_cli("train", "copy", "--run-dir", str(run_dir), "--steps", "1")
    assert result.returncode == 2 and "already holds a run" in result.stderr
