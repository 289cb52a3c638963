"""Tests of the `ntm` command line and of a run directory's reliability: one-line errors with exit
status 2 (also for fuzzed command lines), one writer per run directory, a clear error with the last
checkpoint intact when writing fails, and runs killed at random moments that resume as if never killed.

The tiny run (`tiny_settings`, `tiny_flags`, `tiny_run`) comes from conftest.py. Tests that start `ntm`
as a subprocess are marked slow; the same command lines run in-process in the fast tier."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from ntm import rundir
from ntm.commands import cli
from ntm.evaluate import load_run
from ntm.training import train

slow = pytest.mark.slow


def run_cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "ntm.commands.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


BAD_COMMAND_LINES = [
    (["train", "sorting"], "unknown task 'sorting'"),
    (["train", "copy", "--lr", "fast"], "--lr: invalid float value"),
    (["train", "copy", "--lr", "-1"], "lr must be a positive number"),
    (["train", "copy", "--max-length", "0"], "--max-length must be an integer >= 1"),
    (["train", "copy", "--min-items", "3"], "--min-items does not apply to task copy"),
    (["train", "copy", "--model", "lstm", "--memory-slots", "8"], "--memory-slots does not apply to --model lstm"),
    (["train", "copy", "--shift-range", "2"], "--shift-range must be odd"),
    (["train", "copy", "--curriculum", "sometimes"], "invalid choice: 'sometimes'"),
    (["train", "copy", "--seeds", "0"], "--seeds must be >= 1"),
    (["train", "repeat_copy", "--init-from", "nowhere"], "neither a saved model or run directory nor a pretrained"),
    (["train", "copy", "--init-from", "repeat_copy"], "channels can be added, not removed"),
    (["train", "copy", "--init-from", "copy", "--memory-width", "12"], "memory_width=20 there, 12 here"),
    (["train"], "give a TASK"),
    (["eval", "/nonexistent/run"], "does not exist"),
    (["eval", "."], "not an ntm run directory"),
]


@pytest.mark.parametrize("args,expected", BAD_COMMAND_LINES)
def test_bad_command_lines_exit_2_with_one_line(args, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert expected in err


@slow
@pytest.mark.parametrize("args,expected", [BAD_COMMAND_LINES[0], BAD_COMMAND_LINES[3], BAD_COMMAND_LINES[-1]])
def test_bad_command_lines_exit_2_with_one_line_from_the_ntm_process(args, expected, tmp_path):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr


def test_every_flag_has_help_text_from_its_field():
    help_text = " ".join(cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    assert "--judge-sequences" in help_text and "fresh held-out sequences of a mean criterion" in help_text
    assert "{none,levels,ramp,exp3s}" in help_text
    assert "--input-size" not in help_text and "--model-options" not in help_text


class Stop(Exception):
    """Raised instead of training, so fuzzed command lines that are valid end at once."""


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.sampled_from(["train", "eval", "show", "compare", "report", "copy", "ngrams", "--lr", "--seeds", "--steps",
                     "--model", "lstm", "dnc", "--max-length", "--resume", "--curriculum", "exp3s", "--memory-slots",
                     "--eval-lengths", "--run-dir", "--no-until-solved", "--fault-rate", "--", "-h"]),
    st.text(max_size=8), st.integers(-3, 40).map(str), st.floats(allow_nan=True).map(str)), max_size=7))
def test_fuzzed_command_lines_never_print_a_traceback(monkeypatch, tmp_path, capsys, argv):
    import ntm.experiment
    import ntm.training

    def refuse(*args, **kwargs):
        raise Stop

    # ntm.experiment holds its own reference to train (imported by name), which the command line calls
    monkeypatch.setattr(ntm.training, "train", refuse)
    monkeypatch.setattr(ntm.experiment, "train", refuse)
    monkeypatch.chdir(tmp_path)
    try:
        status = cli.main(argv)
    except Stop:
        return
    except SystemExit as exit:  # --help and argparse's own exits
        assert exit.code in (0, None, 2)
        return
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert "Traceback" not in error and len(error.splitlines()) == 1, error


@slow
def test_cli_train_and_eval_end_to_end(tmp_path, tiny_flags):
    run_dir = tmp_path / "cli"
    result = run_cli("train", "copy", *tiny_flags, "--steps", "20", "--run-dir", str(run_dir),
                     "--eval-lengths", "2,4", "--eval-sequences", "100", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "not solved" in result.stdout and "run directory" in result.stdout
    saved = json.loads((run_dir / "eval.json").read_text())
    rows = {row["length"]: row for row in saved["rows"]}  # the stop rule's rows (3 and 2) and the asked-for 4
    assert sorted(rows) == [2, 3, 4] and rows[4]["sequences"] == 100
    result = run_cli("eval", str(run_dir), "--lengths", "6", "--sequences", "200")
    assert result.returncode == 0, result.stderr
    rows = json.loads((run_dir / "eval.json").read_text())["rows"]  # the training's rows are kept
    assert [(row["length"], row["sequences"]) for row in rows] == [(2, 100), (3, 100), (4, 100), (6, 200)]
    result = run_cli("train", "copy", "--run-dir", str(run_dir), "--steps", "1")
    assert result.returncode == 2 and "already holds a run" in result.stderr


@slow
def test_cli_trains_seeds_at_once_reports_each_and_resumes_them_as_a_group(tmp_path, tiny_flags):
    run_dir = tmp_path / "cli-seeds"
    result = run_cli("train", "copy", "--seeds", "2", "--seed", "5", *tiny_flags, "--steps", "10", "--run-dir",
                     str(run_dir), "--eval-lengths", "2", "--eval-sequences", "100", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "2 seeds of ntm on copy" in result.stdout
    assert f"the best seed: {run_dir / 'seed-'}" in result.stdout  # the directory `ntm eval` takes
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "seed-5", "seed-6", "seeds.json"]
    result = run_cli("train", "--resume", str(run_dir), "--steps", "15", "--eval-lengths", "2", "--eval-sequences",
                     "100", "--quiet")
    assert result.returncode == 0, result.stderr
    for seed in (5, 6):
        assert load_run(run_dir / f"seed-{seed}").step == 15


def test_corrupt_or_mismatched_run_directories_exit_2_and_keep_files(tiny_run, capsys):
    run_dir = tiny_run
    config = json.loads((run_dir / "config.json").read_text())

    def fails(*args) -> str:
        assert cli.main(list(args)) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        return err

    assert "positive integers" in fails("eval", str(run_dir), "--lengths", "3,x")

    mismatched = dict(config, settings=dict(config["settings"],
                                            model_options={**config["settings"]["model_options"], "memory_width": 12}))
    mismatched["model_config"] = dict(config["model_config"], memory_width=12)
    (run_dir / "config.json").write_text(json.dumps(mismatched))
    assert "could be restored" in fails("eval", str(run_dir))
    assert "could be restored" in fails("train", "--resume", str(run_dir), "--steps", "20")
    assert rundir.Checkpoints(run_dir).steps() == [0, 10]

    (run_dir / "config.json").write_text("{not json")
    assert "corrupt" in fails("eval", str(run_dir))
    assert "--resume continues the saved run" in fails("train", "--resume", str(run_dir), "--memory-slots", "8")
    assert (run_dir / "checkpoints" / "10").is_dir()


@slow
def test_a_run_directory_in_use_is_refused_and_a_killed_holder_leaves_no_lock(tiny_run, quiet):
    run_dir = tiny_run
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(600)",
                               str(run_dir / rundir.LOCK_FILE)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = run_cli("train", "--resume", str(run_dir), "--steps", "12", "--quiet")
        assert result.returncode == 2 and "in use by another ntm process" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    result = train(run_dir=run_dir, resume=True, budget={"steps": 12}, console=quiet, progress=False)
    assert result.step == 12


def test_a_failed_checkpoint_write_is_a_clear_error_and_the_last_checkpoint_stays_intact(tiny_run, monkeypatch, quiet):
    import orbax.checkpoint as ocp

    run_dir = tiny_run  # 10 steps, checkpoints at 0 and 10
    original = ocp.CheckpointManager.save

    def disk_full(self, step, *args, **kwargs):
        if step > 10:
            raise OSError(28, "No space left on device")
        return original(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", disk_full)
    with pytest.raises(rundir.RunDirectoryError, match="No space left on device; the last good checkpoint "
                                                        r"\(step 10\) is intact"):
        train(run_dir=run_dir, resume=True, budget={"steps": 20}, console=quiet, progress=False)
    monkeypatch.setattr(ocp.CheckpointManager, "save", original)
    assert rundir.Checkpoints(run_dir).steps() == [0, 10]
    assert load_run(run_dir).step == 10


def test_an_unwritable_run_directory_is_a_one_line_error(tmp_path, tiny_flags, capsys):
    (tmp_path / "file").write_text("not a directory")
    assert cli.main(["train", "copy", *tiny_flags, "--steps", "2", "--run-dir", str(tmp_path / "file" / "run")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "file" in err, err


def kill_and_resume_until_done(run_dir, flags: list[str], steps: int, kills: int, rng) -> int:
    """Run `ntm train` to `steps`, SIGKILLing it `kills` times at random moments; returns kills made."""
    command = ["train", "copy", *flags, "--steps", str(steps), "--no-until-solved", "--checkpoint-every", "1",
               "--log-every", "1", "--eval-every", "7", "--run-dir", str(run_dir), "--quiet", "--eval-lengths", "2",
               "--eval-sequences", "100"]
    made = 0
    while True:
        args = command if not (run_dir / "config.json").exists() else [
            "train", "--resume", str(run_dir), "--quiet", "--eval-lengths", "2", "--eval-sequences", "100"]
        process = subprocess.Popen([sys.executable, "-m", "ntm.commands.cli", *args], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        if made < kills:
            time.sleep(rng.uniform(2.0, 9.0))  # start-up, compile, training and checkpoint writes alike
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                made += 1
                continue
        _, error = process.communicate(timeout=300)
        assert process.returncode == 0, error
        return made


@slow
def test_a_run_killed_at_random_moments_resumes_to_the_uninterrupted_result(tmp_path, tiny_flags, tiny_settings, quiet):
    rng = np.random.default_rng(int(os.environ.get("NTM_KILL_SEED", "0")))
    made = kill_and_resume_until_done(tmp_path / "killed", tiny_flags, 60, 4, rng)
    assert made >= 2
    straight = tmp_path / "straight"
    train(tiny_settings(steps=60, checkpoint_every=1, log_every=1, eval_every=7), run_dir=straight, console=quiet,
          progress=False)
    rows = rundir.read_metrics(tmp_path / "killed")
    steps = [row["step"] for row in rows if "event" not in row]
    assert steps == list(range(1, 61))  # parseable, every step once
    straight_rows = [row for row in rundir.read_metrics(straight) if "event" not in row]
    np.testing.assert_allclose([r["cost"] for r in rows if "event" not in r], [r["cost"] for r in straight_rows],
                               rtol=1e-4)
    killed_params, straight_params = load_run(tmp_path / "killed").model, load_run(straight).model
    from flax import nnx
    for a, b in zip(jax.tree.leaves(nnx.state(killed_params, nnx.Param)),
                    jax.tree.leaves(nnx.state(straight_params, nnx.Param))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_none_typed_for_an_optional_setting_turns_it_off_rather_than_keeping_the_default():
    from ntm.commands.train_flags import settings_from_args

    parser = cli.build_parser(["train", "copy"])
    off = settings_from_args(parser.parse_args(["train", "copy", "--clip-value", "none", "--lr-drop-below", "none"]))
    assert off.model_options["clip_value"] is None and off.lr_drop_below is None
    default = settings_from_args(parser.parse_args(["train", "copy"]))
    assert "clip_value" not in default.model_options  # not given: the model's own default stands
    given = settings_from_args(parser.parse_args(["train", "copy", "--lr-drop-below", "0.1"]))
    assert given.lr_drop_below == 0.1


def test_init_from_names_a_model_or_none():
    from ntm.commands.train_flags import settings_from_args

    parser = cli.build_parser(["train", "repeat_copy"])
    assert settings_from_args(parser.parse_args(["train", "repeat_copy", "--init-from", "copy"])).init_from == "copy"
    assert settings_from_args(parser.parse_args(["train", "repeat_copy", "--init-from", "none"])).init_from is None
