"""Tests of `ntm.training.parallel` (the step spread over devices) and `ntm.runtime.set_host_devices`.

The spread steps run in a subprocess (tests/parallel_two_devices.py, marked slow) that asks XLA for 2 CPU
devices before importing JAX; their parameters, optimizer states and statistics after several steps must
equal those of the single-device step (`jit(vmap(grad -> apply))`) within float tolerance.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ntm import runtime
from ntm.training import parallel

# The script that runs the spread steps in a process with two XLA devices.
TWO_DEVICE_SCRIPT = Path(__file__).with_name("parallel_two_devices.py")


@pytest.fixture(scope="module")
def two_devices():
    env = {**os.environ, "XLA_FLAGS": ""}
    result = subprocess.run([sys.executable, str(TWO_DEVICE_SCRIPT)], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_subprocess_has_two_devices(two_devices):
    assert two_devices["devices"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("case", ["seeds", "batch", "batch_one_device"])
def test_spread_steps_equal_the_single_device_step(two_devices, case):
    result = two_devices[case]
    # Training moved the parameters well beyond the tolerance, so equality is not vacuous.
    assert result["moved"] > 1e-3
    assert result["state"] < 2e-5, result
    assert result["stats"] < 1e-4, result
    assert result["frozen_seed_moved"] == 0.0
    # seeds mode leaves each seed's state on its device between steps; batch mode brings it home
    assert result["placed_on"] == (2 if case == "seeds" else 1)
    assert result["devices"] == (1 if case == "batch_one_device" else 2)  # but ran on both
    assert result["collectives"] == 0  # no program waits on another device (see parallel's docstring)


@pytest.mark.slow
def test_the_training_loop_spread_over_two_devices_equals_one_device(two_devices):
    loop = two_devices["loop"]
    assert loop["spread"] == loop["single"]  # same steps, held-out checks and restores
    assert loop["spread"]["steps"] == [24, 24] and loop["spread"]["checked"]
    assert min(loop["spread"]["restores"]) >= 1  # the fault-injected restores wrote into the spread state
    assert loop["seeds_differ"] > 1e-3
    assert loop["state"] < 2e-5, loop


@pytest.mark.slow
def test_auto_plans_seeds_first_then_batch(two_devices):
    assert two_devices["seeds"]["plan"] == "seeds"
    assert two_devices["batch"]["plan"] == "batch"  # 3 seeds do not split over 2 devices, 4 sequences do


@pytest.mark.slow
def test_seed_mode_passes_each_seed_its_own_key_and_batch_mode_folds_in_the_device(two_devices):
    assert two_devices["seeds"]["draws"] == pytest.approx(two_devices["plain_draws"][:2], abs=1e-7)
    expected = two_devices["expected_batch_draws"]
    assert two_devices["batch"]["draws"] == pytest.approx(expected, abs=1e-6)
    assert two_devices["batch"]["draws"] != pytest.approx(two_devices["plain_draws"], abs=1e-3)


def test_plan_without_divisors_or_with_one_device_is_none():
    assert parallel.plan(3, 5, devices=[object(), object()]) == "none"
    assert parallel.plan(4, 8, devices=[object()]) == "none"
    assert parallel.plan(4, 3, devices=[object(), object()]) == "seeds"
    assert parallel.plan(3, 6, devices=[object()] * 3) == "seeds"
    assert parallel.plan(2, 6, devices=[object()] * 3) == "batch"
    # the batch is split only when each device gets enough sequence steps to pay for it
    two = [object(), object()]
    assert parallel.plan(1, 8, devices=two, steps=41) == "none"  # 4 x 41 per device: slower split
    assert parallel.plan(1, 32, devices=two, steps=41) == "batch"
    assert parallel.plan(1, 8, devices=two, steps=204) == "batch"
    assert parallel.plan(2, 8, devices=two, steps=41) == "seeds"  # seeds never communicate


def test_compile_step_rejects_bad_sizes_and_modes():
    fn = lambda *a: a
    with pytest.raises(ValueError, match="seeds"):
        parallel.compile_step(fn, fn, seeds=0, batch_size=8)
    with pytest.raises(ValueError, match="batch_size"):
        parallel.compile_step(fn, fn, seeds=1, batch_size=True)
    with pytest.raises(ValueError, match="mode"):
        parallel.compile_step(fn, fn, seeds=1, batch_size=8, mode="sideways")
    with pytest.raises(ValueError, match="divisible"):
        parallel.compile_step(fn, fn, seeds=3, batch_size=8, mode="seeds", devices=[object(), object()])
    with pytest.raises(ValueError, match="at least 1"):
        parallel.compile_step(fn, fn, seeds=1, batch_size=8, devices=0)
    with pytest.raises(ValueError, match="at least one device"):
        parallel.compile_step(fn, fn, seeds=1, batch_size=8, devices=[])


def test_a_device_count_caps_the_devices():
    import jax

    assert parallel.resolve_devices(1) == jax.local_devices()[:1]
    assert parallel.resolve_devices(None) == jax.local_devices()
    assert parallel.resolve_devices(10**6) == jax.local_devices()


def test_host_device_count_is_the_largest_divisor_up_to_the_cores():
    assert runtime.host_device_count(8, 1, cores=2) == 2
    assert runtime.host_device_count(1, 1, cores=2) == 1
    assert runtime.host_device_count(1, 4, cores=2) == 2
    assert runtime.host_device_count(9, 1, cores=4) == 3
    assert runtime.host_device_count(7, 5, cores=4) == 1
    assert runtime.host_device_count(32, 1, cores=1) == 1


def test_set_host_devices_writes_the_flag_and_respects_the_user(monkeypatch):
    monkeypatch.setattr(runtime, "_backends_started", lambda: False)
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    monkeypatch.delenv(runtime.HOST_DEVICES_ENV, raising=False)
    assert runtime.set_host_devices(8) == 2
    assert os.environ["XLA_FLAGS"].split() == ["--xla_cpu_enable_fast_math=false",
                                               "--xla_force_host_platform_device_count=2"]
    assert runtime.set_host_devices(1) == 2  # the flag now in XLA_FLAGS wins
    monkeypatch.setenv("XLA_FLAGS", "")
    assert runtime.set_host_devices(1) == 1  # batch 1, one seed: nothing to split
    assert os.environ["XLA_FLAGS"] == ""
    monkeypatch.setenv(runtime.HOST_DEVICES_ENV, "1")
    assert runtime.set_host_devices(8) == 1
    assert os.environ["XLA_FLAGS"] == ""
    monkeypatch.setenv(runtime.HOST_DEVICES_ENV, "4")
    assert runtime.set_host_devices(1) == 4
    assert "--xla_force_host_platform_device_count=4" in os.environ["XLA_FLAGS"]
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setenv(runtime.HOST_DEVICES_ENV, "two")
    with pytest.raises(ValueError, match="NTM_HOST_DEVICES"):
        runtime.set_host_devices(8)
    # the cores a scheduler granted win over a count inherited from the driver's environment
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=2")
    monkeypatch.setenv(runtime.HOST_DEVICES_ENV, "4")
    assert runtime.set_host_devices(8, count=1, granted=True) == 1
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false"
    assert runtime.HOST_DEVICES_ENV not in os.environ
    assert runtime.set_host_devices(8, count=3, granted=True) == 3
    assert os.environ["XLA_FLAGS"].split()[-1] == "--xla_force_host_platform_device_count=3"


def test_set_host_devices_after_jax_started_reports_the_devices_it_has(monkeypatch):
    import jax

    jax.devices()
    monkeypatch.setenv("XLA_FLAGS", "")
    assert runtime.set_host_devices(8) == len(jax.devices("cpu"))
    assert os.environ["XLA_FLAGS"] == ""
