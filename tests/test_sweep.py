"""Tests of `ntm sweep` on Ray Tune: bad input, an embedded local sweep with ASHA, and a sweep that joins a
real Ray head process (`ray start --head`), is interrupted with Ctrl-C and resumed without retraining.

Trials are the tiny run of conftest.py (copy of lengths 1-3, memory 16 x 8, tens of steps) so that the
time goes to Ray and JAX start-up; the tests that start Ray are marked slow. Ray is part of the test extra,
so nothing here is skipped.
"""

import csv
import hashlib
import json
import math
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Before Ray is first imported (it reads these at import): every Ray here listens on loopback addresses
# only, and uses token authentication with the token Ray keeps in ~/.ray/auth_token, so the sweep that
# joins the head process with --address holds the same token as the head (as on a real cluster).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")

from ntm.commands import cli, sweep, train_flags  # noqa: E402
from ntm.commands.sweep import command, space  # noqa: E402
from ntm.evaluate import load_run  # noqa: E402
from ntm.rundir import read_metrics  # noqa: E402



@pytest.fixture
def tiny(tiny_flags):
    """The tiny run of conftest.py as `ntm sweep` flags, each trial's final table on 100 sequences at length 3."""
    return [*tiny_flags, "--eval-lengths", "3", "--eval-sequences", "100"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A real Ray head (`ray start --head --block`) on a free port; stopped by signalling the process it started."""
    port = free_port()
    log = tmp_path_factory.mktemp("head") / "head.log"
    ray_cli = Path(sys.executable).with_name("ray")
    with log.open("w") as out:
        head = subprocess.Popen([str(ray_cli), "start", "--head", "--port", str(port), "--num-cpus", "2",
                                 "--include-dashboard=false", "--disable-usage-stats", "--block"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None, f"ray start failed: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "ray start did not come up in 90 s"
            time.sleep(0.25)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)  # --block stops the processes it started on SIGTERM
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def held_out(run_dir):
    return [row for row in read_metrics(run_dir) if row.get("event") == "held_out"]


# ----------------------------------------------------------------------------- bad input, no Ray started


@pytest.mark.parametrize("argv, expected", [
    (["--search", "lr=gauss:1:2"], "the distribution is one of loguniform:LOW:HIGH"),
    (["--search", "lr"], "write FLAG=DISTRIBUTION"),
    (["--search", "lr=loguniform:1e-2:1e-4"], "LOW must be below HIGH"),
    (["--search", "lr=loguniform:0:1e-2"], "loguniform needs LOW > 0"),
    (["--search", "lr=uniform:1e-3"], "uniform takes LOW:HIGH"),
    (["--search", "no-such-flag=choice:1,2"], "'no-such-flag' is not an ntm train flag"),
    (["--search", "batch-size=choice:4,eight"], "--batch-size takes integers, not 'eight'"),
    (["--search", "batch-size=grid:4,,8"], "grid takes values separated by commas"),
    (["--search", "optimizer=uniform:1:2"], "--optimizer is not a number"),
    (["--search", "optimizer=choice:adam,sgd"], "--optimizer is one of adam, rmsprop, not 'sgd'"),
    (["--search", "remat=choice:true,maybe"], "--remat is on or off"),
    (["--search", "batch-size=choice:4,0"], "the trial with batch-size=0 would fail: ntm train: --batch-size must be"),
    (["--search", "memory-width=grid:8,0"], "the trial with memory-width=0 would fail"),
    (["--search", "lr=choice:1e-3,3e-3", "--lr", "1e-3"], "--lr is both fixed and searched"),
    (["--search", "lr=choice:1e-3", "--search", "lr=grid:3e-3"], "--lr is searched twice"),
    ([], "give at least one --search"),
    (["--search", "lr=choice:1e-3", "--samples", "0"], "--samples must be >= 1"),
    (["--search", "lr=choice:1e-3", "--grace-sequences", "100"], "--grace-sequences is for --scheduler asha"),
    (["--search", "lr=choice:1e-3", "--address", "127.0.0.1:1", "--num-cpus", "2"], "--num-cpus sizes the embedded Ray"),
    (["--search", "batch-size=choice:4,8", "--scheduler", "pbt"], "--scheduler pbt perturbs lr, grad-clip, replay-share"),
    (["--search", "lr=grid:1e-3,1e-2", "--scheduler", "pbt"], "give it as loguniform, uniform or choice, not grid"),
    (["--search", "lr=choice:1e-3", "--perturbation-sequences", "100"], "--perturbation-sequences is for --scheduler pbt"),
])
def test_bad_sweeps_end_with_one_line_and_status_2_before_ray_starts(tmp_path, capsys, argv, expected):
    sweep_dir = tmp_path / "sweep"
    assert cli.main(["sweep", "copy", "--sweep-dir", str(sweep_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert not sweep_dir.exists()


def test_resume_refuses_new_settings_and_directories_without_a_sweep(tmp_path, capsys):
    assert cli.main(["sweep", "--resume", "--sweep-dir", str(tmp_path)]) == 2
    assert f"{tmp_path} holds no sweep to resume" in capsys.readouterr().err
    (tmp_path / sweep.SWEEP_FILE).write_text("{}")
    assert cli.main(["sweep", "--resume", "--sweep-dir", str(tmp_path), "--lr", "0.1", "--samples", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "remove --samples, --lr" in err
    assert cli.main(["sweep", "copy", "--sweep-dir", str(tmp_path), "--search", "lr=choice:1e-3"]) == 2
    assert "already holds a sweep; continue it with --resume" in capsys.readouterr().err


def test_without_ray_the_command_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert cli.main(["sweep", "copy", "--sweep-dir", str(tmp_path / "s"), "--search", "lr=choice:1e-3"]) == 2
    err = capsys.readouterr().err
    assert err == 'ntm sweep: Ray Tune is not installed; pip install -e ".[sweep]"\n'


def test_a_cluster_out_of_reach_ends_with_one_line_in_seconds(tmp_path, capsys, monkeypatch):
    """Ray itself retries an unreachable head for minutes; the command says so at once and writes nothing."""
    from ntm.commands import ray_cluster

    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    sweep_dir = tmp_path / "s"
    assert cli.main(["sweep", "copy", "--sweep-dir", str(sweep_dir), "--search", "lr=choice:1e-3",
                     "--address", address]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"could not join the Ray cluster at {address}: Connection refused" in err, err
    assert not sweep_dir.exists()

    def silent(where, timeout):  # a head behind a firewall that drops packets
        raise TimeoutError("timed out")

    monkeypatch.setattr(ray_cluster.socket, "create_connection", silent)
    with pytest.raises(ray_cluster.UsageError, match=r"ray://10\.0\.0\.1:10001: no answer within 10 s"):
        ray_cluster.reach("ray://10.0.0.1:10001", "sweep")


def train_settings(argv):
    """What `ntm train` makes of these words."""
    return train_flags.settings_from_args(cli.build_parser(argv).parse_args(argv))


def test_trial_settings_are_what_ntm_train_makes_of_the_same_flags(tmp_path):
    """A trial's typed settings (the fixed flags' settings, the searched values put in with replace) equal
    what `ntm train` makes of the fixed flags and the trial's values together: a training setting, an
    on/off flag, a model option and a task option searched; and they survive sweep.json and pickling."""
    fixed = ["copy", "--no-until-solved", "--eval-every", "7", "--memory-slots", "16", "--max-length", "3",
             "--lr", "0.0025"]
    argv = ["sweep", *fixed, "--sweep-dir", str(tmp_path), "--search", "batch-size=grid:4,16",
            "--search", "remat=choice:true,false", "--search", "controller-units=choice:32,64",
            "--search", "min-length=choice:1,2"]
    spec = command.sweep_spec(cli.build_parser(argv).parse_args(argv), tmp_path)
    plan = command.trial_plan(json.loads(json.dumps(spec)))  # as --resume reads it back
    config = {"batch_size": 16, "remat": True, "controller_units": 64, "min_length": 2}
    trial = space.trial_settings(plan.bases, config, plan.flags)
    assert trial == train_settings(["train", *fixed, "--batch-size", "16", "--remat", "--controller-units", "64",
                                    "--min-length", "2"])
    assert (trial.batch_size, trial.until_solved, trial.eval_every, trial.lr, trial.remat) == \
        (16, False, 7, 0.0025, True)
    assert (trial.model_options["memory_slots"], trial.model_options["controller_units"]) == (16, 64)
    assert (trial.task_options["min_length"], trial.task_options["max_length"]) == (2, 3)
    assert pickle.loads(pickle.dumps(plan)) == plan  # what Ray hands each worker
    flags = cli.build_parser(argv).parse_args(argv).train_flags
    search = space.parse_search("lr=loguniform:1e-4:1e-2", flags)
    assert search.kind == "loguniform" and search.values == (1e-4, 1e-2)
    assert space.parse_search("batch_size=uniform:4:16", flags).domain().upper == 17  # randint: inclusive HIGH
    assert space.expected_trials(3, [space.parse_search("seed=grid:0,1", flags), search]) == 6


def test_a_searched_model_trains_each_trial_on_its_own_models_defaults(tmp_path):
    """--search model=...: one base per model, each with the task's defaults for that model."""
    argv = ["sweep", "copy", "--sweep-dir", str(tmp_path), "--search", "model=choice:ntm,lstm",
            "--search", "seed=grid:0,1"]
    plan = command.trial_plan(command.sweep_spec(cli.build_parser(argv).parse_args(argv), tmp_path))
    assert sorted(plan.bases) == ["lstm", "ntm"]
    for model in ("ntm", "lstm"):
        trial = space.trial_settings(plan.bases, {"model": model, "seed": 1}, plan.flags)
        assert trial == train_settings(["train", "copy", "--model", model, "--seed", "1"])
    ntm_base, lstm_base = plan.bases["ntm"], plan.bases["lstm"]
    assert (ntm_base.lr, ntm_base.model_options) == (3e-3, {})
    assert (lstm_base.lr, lstm_base.model_options) == (1e-3, {"layers": 3, "units": 256})  # the paper's LSTM


def test_asha_checkpoints_every_trial_at_each_held_out_check(tmp_path):
    """Ray ends a trial that ASHA stops at once, so each base saves a checkpoint at every check."""
    argv = ["sweep", "copy", "--sweep-dir", str(tmp_path), "--search", "lr=choice:1e-3,1e-2", "--eval-every", "30",
            "--scheduler", "asha", "--max-steps", "900", "--batch-size", "4"]
    spec = command.sweep_spec(cli.build_parser(argv).parse_args(argv), tmp_path)
    (base,) = command.trial_plan(spec).bases.values()
    assert (base.checkpoint_every, spec["budget_sequences"], spec["grace_sequences"]) == (30, 3600, 3600 // 27)


def test_a_run_continued_from_anothers_snapshot_trains_on_from_its_state_with_its_own_settings(tiny_run, tmp_path,
                                                                                              tiny_settings, quiet):
    """PBT's exploit without Ray: the snapshot of a run at its newest checkpoint, continued in another directory
    with another learning rate: the same parameters and data stream, the new rate in the optimizer state, a
    `forked` record, the source's history before it; then it resumes and trains like any run."""
    import jax
    import numpy as np

    from ntm.training import train
    from ntm.training.records import Forked, Training, of_kind
    from ntm.training.runs import RunDirectory
    from ntm.training.step import make_optimizer

    source = RunDirectory(tiny_run)
    snapshot = tmp_path / "snapshot"
    assert source.snapshot(snapshot) == 10 and sorted(p.name for p in (snapshot / "checkpoints").iterdir()) == ["10"]
    settings = tiny_settings(lr=3e-4, steps=20)
    target = RunDirectory(tmp_path / "trial")
    assert target.continue_from(snapshot, settings, source="000-lr=1e-3") == 10
    assert target.settings == settings
    (forked,) = of_kind(target.records(), Forked)
    assert (forked.step, forked.source) == (10, "000-lr=1e-3")
    assert forked.changed == {"lr": [source.settings.lr, 3e-4], "steps": [10, 20]}
    assert [row.step for row in of_kind(target.records(), Training)] == [5, 10]  # the source's history

    def saved(run, lr_of):
        from flax import nnx

        from ntm import tasks
        from ntm.training.runs import build_model

        model, _ = build_model(lr_of, tasks.get("copy", max_length=3))
        params = nnx.state(model, nnx.Param)
        with_checkpoints = run.checkpoints()
        try:
            return with_checkpoints.restore(nnx.to_pure_dict(params), make_optimizer(lr_of).init(params))
        finally:
            with_checkpoints.close()

    step, params, opt_state, progress = saved(target, settings)
    _, source_params, source_opt_state, source_progress = saved(source, source.settings)
    assert step == 10 and float(opt_state.hyperparams["learning_rate"]) == pytest.approx(3e-4)
    assert float(source_opt_state.hyperparams["learning_rate"]) == pytest.approx(source.settings.lr)
    for mine, theirs in zip(jax.tree.leaves(params), jax.tree.leaves(source_params)):
        np.testing.assert_array_equal(mine, theirs)
    assert progress["data_rng"] == source_progress["data_rng"] and progress["lr"] == 3e-4
    train(run_dir=target.path, resume=True, console=quiet, progress=False)
    rows = of_kind(target.records(), Training)
    assert rows[-1].step == 20 and rows[-1].lr == pytest.approx(3e-4)
    # another model cannot be continued
    with pytest.raises(ValueError, match="only with the same model"):
        RunDirectory(tmp_path / "other").continue_from(snapshot, tiny_settings(model_options={"memory_slots": 8}),
                                                       source="000")


# ----------------------------------------------------------------------------- Ray


@pytest.mark.slow
def test_local_sweep_with_asha_writes_runs_results_and_figure(tmp_path, capsys, tiny):
    """Embedded Ray, two trials one after the other: lr 0.01 learns, lr 1e-5 does not and ASHA stops it at
    the first rung (80 sequences = 10 steps); every trial is a run directory that `ntm eval` reads."""
    sweep_dir = tmp_path / "sweep"
    argv = ["sweep", "copy", "--search", "lr=grid:0.01,0.00001", "--sweep-dir", str(sweep_dir), "--max-steps", "60",
            "--eval-every", "10", "--scheduler", "asha", "--grace-sequences", "80", "--max-concurrent", "1",
            "--num-cpus", "2", *tiny]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    rows = read_csv(sweep_dir / sweep.RESULTS_FILE)
    assert [row["lr"] for row in rows] == ["0.01", "1e-05"]  # best (lowest held-out cost) first
    good, poor = rows
    assert (good["status"], good["steps"], good["sequences"]) == ("not solved", "60", "480")
    assert (poor["status"], poor["steps"], poor["sequences"]) == ("stopped early", "10", "80")
    assert float(good["cost"]) < float(poor["cost"])
    for row in rows:
        run_dir = sweep_dir / row["run_dir"]
        checks = held_out(run_dir)
        assert float(row["cost"]) == pytest.approx(checks[-1]["cost"], rel=1e-5)
        assert float(row["bit_errors"]) == pytest.approx(checks[-1]["bit_errors"], rel=1e-5)
        assert json.loads((run_dir / "config.json").read_text())["settings"]["lr"] == float(row["lr"])
        assert float(row["wall_time_s"]) > 0 and row["solved"] == "False" and row["time_to_solve_s"] == ""
    assert [c["step"] for c in held_out(sweep_dir / good["run_dir"])] == [10, 20, 30, 40, 50, 60]
    assert (sweep_dir / good["run_dir"] / "report.md").is_file()  # what ntm train leaves, for a finished trial
    assert (sweep_dir / sweep.FIGURE_FILE).read_bytes()[:4] == b"\x89PNG"
    assert "2 of 2 trials ended, 0 solved" in out and out.index("0.01") < out.index("1e-05")
    assert cli.main(["eval", str(sweep_dir / good["run_dir"]), "--lengths", "3", "--sequences", "100"]) == 0


@pytest.mark.slow
def test_population_based_training_continues_a_better_trials_run_with_a_perturbed_rate(tmp_path, capsys, tiny):
    """Two trials side by side, perturbed every 80 sequences (two checks): at each perturbation the worse of
    the two continues the other's run (PBT's exploit) with the rate perturbed; the continued run says so in a
    `forked` record, trains on from the other's checkpoint at the new rate, and ends at its budget."""
    sweep_dir = tmp_path / "sweep"
    argv = ["sweep", "copy", "--search", "lr=loguniform:1e-4:3e-2", "--samples", "2", "--scheduler", "pbt",
            "--perturbation-sequences", "80", "--sweep-dir", str(sweep_dir), "--max-steps", "40", "--eval-every", "5",
            "--no-until-solved", "--num-cpus", "2", *tiny]
    assert cli.main(argv) == 0, capsys.readouterr().err
    rows = read_csv(sweep_dir / sweep.RESULTS_FILE)
    assert len(rows) == 2 and all((row["status"], row["steps"]) == ("not solved", "40") for row in rows)
    names = {row["trial"] for row in rows}
    forks = []
    for row in rows:
        run_dir = sweep_dir / row["run_dir"]
        metrics = read_metrics(run_dir)
        assert json.loads((run_dir / "config.json").read_text())["settings"]["lr"] == pytest.approx(float(row["lr"]), rel=1e-3)
        own_forks = [r for r in metrics if r.get("event") == "forked"]
        if own_forks:  # the last is this trial's; any before it came with the history of the run it continued
            assert own_forks[-1]["source"] in names - {row["trial"]}
        for fork in own_forks:
            forks.append(fork)
            assert fork["source"] in names and fork["step"] % 5 == 0
            assert set(fork["changed"]) <= {"lr"}
            until = min([r["step"] for r in metrics if r.get("event") == "forked" and r["step"] > fork["step"]],
                        default=math.inf)
            rates = [r["lr"] for r in metrics if "event" not in r and fork["step"] < r["step"] <= until]
            if "lr" in fork["changed"]:  # trained on at the perturbed rate (none left to train at the budget's end)
                assert rates == [pytest.approx(fork["changed"]["lr"][1], rel=1e-6)] * len(rates)
        assert [c["step"] for c in held_out(run_dir)][-1] == 40
    assert forks, "no trial continued the other's run"


@pytest.mark.slow
def test_sweep_on_a_ray_head_resumes_after_ctrl_c_without_retraining(ray_head, tmp_path, capsys, tiny):
    """Joined with --address: trial 0 (20 steps) ends, Ctrl-C lands while trial 1 (800 steps) trains;
    --resume keeps trial 0 as it was and continues trial 1 from its checkpoint; resuming the finished
    sweep trains nothing."""
    sweep_dir = tmp_path / "sweep"
    argv = ["sweep", "copy", "--search", "max-steps=grid:20,800", "--sweep-dir", str(sweep_dir), "--eval-every", "50",
            "--checkpoint-every", "50", "--no-until-solved", "--max-concurrent", "1", "--address", ray_head, *tiny]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-m", "ntm.commands.cli", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    trials = sweep_dir / sweep.TRIALS_DIR
    deadline = time.monotonic() + 240
    while not any((d / "checkpoints" / "50").is_dir() for d in trials.glob("00001-*")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "trial 1 wrote no checkpoint in 240 s"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted: 1 of 2 trials ended; continue with ntm sweep --resume" in err
    rows = {row["max-steps"]: row for row in read_csv(sweep_dir / sweep.RESULTS_FILE)}
    assert rows["20"]["status"] == "not solved" and rows["800"]["status"] == "unfinished"
    short, long = (sweep_dir / rows[key]["run_dir"] for key in ("20", "800"))
    short_log, short_report = digest(short / "metrics.jsonl"), digest(short / "report.md")
    checks_before = held_out(long)
    assert 1 <= len(checks_before) < 16

    assert cli.main(["sweep", "--resume", "--sweep-dir", str(sweep_dir), "--address", ray_head]) == 0
    rows = {row["max-steps"]: row for row in read_csv(sweep_dir / sweep.RESULTS_FILE)}
    assert (rows["800"]["status"], rows["800"]["steps"], rows["800"]["sequences"]) == ("not solved", "800", "6400")
    assert (rows["20"]["status"], rows["20"]["steps"]) == ("not solved", "20")
    assert digest(short / "metrics.jsonl") == short_log and digest(short / "report.md") == short_report
    checks = held_out(long)
    assert [c["step"] for c in checks] == list(range(50, 801, 50))  # each check once: continued, not restarted
    # Training is deterministic, so the checks made before Ctrl-C come out the same after the resume
    # (those after the last checkpoint were made again).
    figures = lambda rows: [(r["step"], r["cost"], r["bit_errors"]) for r in rows]
    assert figures(checks[:len(checks_before)]) == figures(checks_before)
    capsys.readouterr()

    long_log = digest(long / "metrics.jsonl")
    assert cli.main(["sweep", "--resume", "--sweep-dir", str(sweep_dir), "--address", ray_head]) == 0
    assert digest(long / "metrics.jsonl") == long_log and digest(short / "metrics.jsonl") == short_log
    assert "2 of 2 trials ended" in capsys.readouterr().out


@pytest.mark.slow
def test_a_sweep_of_a_task_of_ones_own_trains_its_trials_on_ray(tmp_path, capsys, monkeypatch):
    """Embedded Ray: two trials of docs/examples/parity.py (max length 3 and 4), each an ordinary run directory
    of that task; the Ray workers import the task from the directory the command found it in."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    sweep_dir = tmp_path / "sweep"
    argv = ["sweep", "docs.examples.parity:Parity", "--search", "max-length=grid:3,4", "--sweep-dir", str(sweep_dir),
            "--max-steps", "30", "--eval-every", "10", "--max-concurrent", "1", "--num-cpus", "2",
            "--memory-slots", "8", "--memory-width", "4", "--controller-units", "16", "--judge-sequences", "100",
            "--eval-lengths", "4", "--eval-sequences", "100"]
    assert cli.main(argv) == 0
    assert "2 of 2 trials ended" in capsys.readouterr().out
    rows = read_csv(sweep_dir / sweep.RESULTS_FILE)
    assert sorted(row["max-length"] for row in rows) == ["3", "4"]
    for row in rows:
        run = load_run(sweep_dir / row["run_dir"])
        assert run.settings.task == "docs.examples.parity:Parity" and type(run.task).__name__ == "Parity"
        assert run.task.difficulty["max_length"] == int(row["max-length"]) and row["status"] != "error"
