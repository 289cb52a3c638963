"""Shared test setup: the `ntm` command's malloc tuning (so tests run at its speed), and the tiny run that
training, command-line and figure tests start from.

The tiny run: copy of lengths 1-3 on a 16 x 8 memory with a 32-unit LSTM controller, batch 8, 10 steps,
no stop rule, held-out checks on 100 sequences. `tiny_settings(**changes)` makes its TrainSettings,
`TINY_FLAGS` are the same run as `ntm train` flags, and `tiny_run` is a trained copy of it in the test's
own directory (trained once per session, copied for each test, so a test may change it).

XLA compiles at backend optimisation level 0 in the tests (faster compiles, the same programs).

Two tiers: tests marked `slow` (subprocess command lines, runs killed at random moments, Ray, two XLA
devices in a subprocess, learning until solved) run with everything else under `pytest`; the fast tier
is `pytest -m "not slow"`.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from rich.console import Console

# One persistent XLA compilation cache for the session, its xdist workers and the `ntm` processes tests
# start (they inherit the environment): most of the suite's time is XLA compiling the same small programs
# again in another process. Set before JAX is imported (ntm imports it); a cache the user named is kept.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "ntm-tests-xla-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
# Tests compile far more than they run (a tiny training step: ~4 s to compile, milliseconds a step), and
# XLA's CPU backend compiles about twice as fast at optimisation level 0; the programs compute the same
# (the HLO passes still run, only the LLVM code generation is lighter). 4:17 -> 2:54 for the fast tier on
# two cores. The user's own level is kept; benchmarks and `ntm` outside the tests use XLA's default.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

from ntm.runtime import tune_malloc  # noqa: E402  (after the cache's environment)

tune_malloc()


TINY_NTM = {"memory_slots": 16, "memory_width": 8, "controller_units": 32}
TINY_TRAINING = dict(task="copy", task_options={"max_length": 3}, model_options=TINY_NTM, batch_size=8, steps=10,
                     until_solved=False, log_every=5, checkpoint_every=10, judge_sequences=100, screen_sequences=100)
TINY_FLAGS = ["--max-length", "3", "--memory-slots", "16", "--memory-width", "8", "--controller-units", "32",
              "--batch-size", "8", "--judge-sequences", "100", "--screen-sequences", "100"]
QUIET = Console(stderr=True, quiet=True)


def make_tiny_settings(**changes):
    from ntm.training import TrainSettings  # JAX is imported by the tests that use it, not by every test

    return TrainSettings(**{**TINY_TRAINING, **changes})


@pytest.fixture
def tiny_settings():
    """`tiny_settings(**changes)`: the tiny run's TrainSettings with these fields changed."""
    return make_tiny_settings


@pytest.fixture
def tiny_flags() -> list[str]:
    """The tiny run as `ntm train` flags (without the task, budget and run directory)."""
    return list(TINY_FLAGS)


@pytest.fixture
def quiet() -> Console:
    return QUIET


@pytest.fixture(scope="session")
def trained_tiny_run(tmp_path_factory):
    """The tiny run, trained once per session (10 steps, checkpoints at 0 and 10); read it, do not change it."""
    from ntm.training import train

    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    train(make_tiny_settings(), run_dir=run_dir, console=QUIET, progress=False)
    return run_dir


@pytest.fixture
def tiny_run(trained_tiny_run, tmp_path):
    """A copy of the trained tiny run in this test's directory, free to change, corrupt or resume."""
    return shutil.copytree(trained_tiny_run, tmp_path / "tiny-run")
