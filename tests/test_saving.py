"""Tests of ntm.save / ntm.load (saved models and run directories), pretrained models and their commands."""

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from rich.console import Console

import ntm
from ntm import DNC, NTM, DNCConfig, NTMConfig, saving, tasks
from ntm.baselines import LSTMConfig, LSTMModel
from ntm.commands import pretrained as pretrained_command

SIZES = dict(input_size=5, output_size=4)
BUILDERS = {
    "ntm": lambda seed=0, **kw: NTM(
        NTMConfig(**SIZES, memory_slots=8, memory_width=6, controller_units=12, **kw), rngs=nnx.Rngs(seed)),
    "dnc": lambda seed=0, **kw: DNC(
        DNCConfig(**SIZES, memory_slots=8, memory_width=6, controller_units=12, **kw), rngs=nnx.Rngs(seed)),
    "lstm": lambda seed=0, **kw: LSTMModel(LSTMConfig(**SIZES, layers=2, units=12, **kw), rngs=nnx.Rngs(seed)),
}


def inputs(batch=2, steps=5):
    return jnp.asarray(np.random.default_rng(0).integers(0, 2, size=(batch, steps, 5)), jnp.float32)


def params_of(model):
    return jax.tree.map(np.asarray, nnx.state(model, nnx.Param).to_pure_dict())


def assert_same_params(a, b):
    assert jax.tree.structure(params_of(a)) == jax.tree.structure(params_of(b))
    for x, y in zip(jax.tree.leaves(params_of(a)), jax.tree.leaves(params_of(b))):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_save_then_load_gives_the_same_model(tmp_path, name):
    model = BUILDERS[name](seed=3)
    path = ntm.save(model, tmp_path / "model")
    assert path == (tmp_path / "model").absolute()
    description = json.loads((path / "model.json").read_text())
    assert description["model"] == name and description["config"] == model.config.to_dict()
    assert description["parameters"] == ntm.count_params(model)
    loaded = ntm.load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert_same_params(loaded, model)
    np.testing.assert_array_equal(loaded(inputs()), model(inputs()))
    # a fresh model of the same config differs, so the equality above came from the restore
    assert not np.array_equal(BUILDERS[name](seed=0)(inputs()), model(inputs()))


def test_non_default_choices_and_bfloat16_parameters_survive_saving(tmp_path):
    model = BUILDERS["ntm"](seed=1, memory_init="learned", learn_initial_weights=True, learn_initial_reads=True,
                            controller="feedforward", controller_layers=2, param_dtype="bfloat16", dtype="bfloat16")
    loaded = ntm.load(ntm.save(model, tmp_path / "m"))
    assert loaded.config == model.config
    assert {leaf.dtype for leaf in jax.tree.leaves(params_of(loaded))} == {np.dtype(jnp.bfloat16)}
    assert_same_params(loaded, model)


def test_a_model_with_addressable_memory_saves_and_loads(tmp_path):
    model = BUILDERS["ntm"](seed=2, address_size=3, read_heads=2, write_heads=2)
    path = ntm.save(model, tmp_path / "m")
    assert json.loads((path / "model.json").read_text())["config"]["address_size"] == 3
    loaded = ntm.load(path)
    assert loaded.config == model.config and loaded.config.address_size == 3
    assert_same_params(loaded, model)
    np.testing.assert_array_equal(loaded.cell.addresses[...], model.cell.addresses[...])
    np.testing.assert_array_equal(loaded(inputs()), model(inputs()))
    # The addresses are restored, not drawn afresh: another seed's differ.
    assert not np.allclose(BUILDERS["ntm"](seed=5, address_size=3, read_heads=2, write_heads=2).cell.addresses[...],
                           loaded.cell.addresses[...])


class TinyController(nnx.Module):
    """A user's controller: one dense layer with tanh, stateless."""

    def __init__(self, input_size, units, *, rngs):
        self.linear = nnx.Linear(input_size, units, rngs=rngs)
        self.output_size = units

    def initialize_state(self, batch_size):
        return ()

    def __call__(self, state, inputs):
        return state, jnp.tanh(self.linear(inputs))


def test_a_user_controller_model_saves_and_loads_when_given_the_controller(tmp_path):
    config = NTMConfig(**SIZES, memory_slots=8, memory_width=6)
    model = NTM(config, rngs=nnx.Rngs(0), controller=TinyController(config.controller_input_size, 7, rngs=nnx.Rngs(1)))
    path = ntm.save(model, tmp_path / "m")
    saved = json.loads((path / "model.json").read_text())["config"]
    assert saved["controller"] == f"user:{__name__}.TinyController"
    with pytest.raises(ValueError, match=r"saved with a user controller \(.*TinyController\); pass controller="):
        ntm.load(path)
    fresh = TinyController(config.controller_input_size, 7, rngs=nnx.Rngs(9))
    loaded = ntm.load(path, controller=fresh)
    np.testing.assert_array_equal(loaded(inputs()), model(inputs()))
    with pytest.raises(ValueError, match=r"controller/linear/bias has shape \(7,\) in the checkpoint but \(8,\) in this model"):
        ntm.load(path, controller=TinyController(config.controller_input_size, 8, rngs=nnx.Rngs(9)))
    with pytest.raises(ValueError, match="controller= is only for"):
        ntm.load(ntm.save(BUILDERS["ntm"](), tmp_path / "plain"), controller=fresh)


def test_saving_over_a_saved_model_replaces_it_atomically(tmp_path):
    first, second = BUILDERS["lstm"](seed=1), BUILDERS["lstm"](seed=2)
    ntm.save(first, tmp_path / "m")
    ntm.save(second, tmp_path / "m")
    np.testing.assert_array_equal(ntm.load(tmp_path / "m")(inputs()), second(inputs()))
    assert sorted(os.listdir(tmp_path)) == ["m"]  # no temporary directory left behind


def test_a_failed_save_leaves_the_earlier_model_and_no_temporary_files(tmp_path, monkeypatch):
    ntm.save(BUILDERS["lstm"](seed=1), tmp_path / "m")

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ocp.StandardCheckpointer, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        ntm.save(BUILDERS["lstm"](seed=2), tmp_path / "m")
    monkeypatch.undo()
    np.testing.assert_array_equal(ntm.load(tmp_path / "m")(inputs()), BUILDERS["lstm"](seed=1)(inputs()))
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_saving_refuses_a_directory_that_is_not_a_saved_model(tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(ValueError, match="not a model saved by ntm.save"):
        ntm.save(BUILDERS["lstm"](), other)
    assert (other / "thesis.tex").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="it is a file"):
        ntm.save(BUILDERS["lstm"](), tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    ntm.save(BUILDERS["lstm"](), empty)  # an empty directory holds nothing to lose
    assert (empty / "model.json").is_file()


def test_load_explains_what_is_wrong_with_a_path(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ntm.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a saved model"):
        ntm.load(tmp_path / "empty")
    path = ntm.save(BUILDERS["ntm"](), tmp_path / "m")
    description = json.loads((path / "model.json").read_text())
    description["config"]["memory_width"] = 7  # every head and the controller input grow
    (path / "model.json").write_text(json.dumps(description))
    with pytest.raises(ValueError, match=r"has shape \(.*\) in the checkpoint but \(.*\) in this model"):
        ntm.load(path)
    description["config"]["memory_slots"] = 0
    (path / "model.json").write_text(json.dumps(description))
    with pytest.raises(ValueError, match="memory_slots must be an integer"):
        ntm.load(path)
    (path / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        ntm.load(path)


def write_run_directory(run_dir, model, name, steps_and_models):
    """A run directory in the layout `ntm train` writes (config.json + checkpoints/<step>/{params,
    opt_state,progress}), one checkpoint per (step, model)."""
    run_dir.mkdir()
    config = {"settings": {"task": "copy", "model": name, "seed": 0}, "model": name,
              "model_config": model.config.to_dict(), "task": "copy", "parameters": ntm.count_params(model)}
    (run_dir / "config.json").write_text(json.dumps(config))
    options = ocp.CheckpointManagerOptions(max_to_keep=5, create=True, enable_async_checkpointing=False)
    with ocp.CheckpointManager((run_dir / "checkpoints").absolute(), options=options) as manager:
        for step, trained in steps_and_models:
            params = nnx.state(trained, nnx.Param).to_pure_dict()
            manager.save(step, args=ocp.args.Composite(
                params=ocp.args.StandardSave(params),
                opt_state=ocp.args.StandardSave(optax.adam(1e-3).init(params)),
                progress=ocp.args.JsonSave({"step": step, "sequences": 8 * step}),
            ))
        manager.wait_until_finished()


@pytest.mark.parametrize("name", ["ntm", "dnc"])
def test_load_takes_the_newest_checkpoint_of_a_run_directory(tmp_path, name):
    early, late = BUILDERS[name](seed=1), BUILDERS[name](seed=2)
    write_run_directory(tmp_path / "run", early, name, [(10, early), (20, late)])
    loaded = ntm.load(tmp_path / "run")
    np.testing.assert_array_equal(loaded(inputs()), late(inputs()))


def test_load_reads_a_run_directory_written_by_ntm_train(tmp_path):
    from ntm.evaluate import load_run
    from ntm.training import TrainSettings, train

    settings = TrainSettings.for_task("copy", model="lstm", model_options={"layers": 1, "units": 8}, steps=3,
                                      until_solved=False, task_options={"max_length": 3})
    train(settings, run_dir=tmp_path / "run", progress=False, console=Console(quiet=True))
    loaded = ntm.load(tmp_path / "run")
    assert_same_params(loaded, load_run(tmp_path / "run").model)
    untrained = LSTMModel(loaded.config, rngs=nnx.Rngs(settings.seed))
    assert not np.array_equal(params_of(loaded)["output"]["bias"], params_of(untrained)["output"]["bias"])


def test_a_torn_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    early, late = BUILDERS["lstm"](seed=1), BUILDERS["lstm"](seed=2)
    write_run_directory(tmp_path / "run", early, "lstm", [(10, early), (20, late)])
    for path in (tmp_path / "run" / "checkpoints" / "20" / "params").rglob("*"):
        if path.is_file():
            path.write_bytes(b"")
    np.testing.assert_array_equal(ntm.load(tmp_path / "run")(inputs()), early(inputs()))


def test_run_directories_without_checkpoints_or_of_many_seeds_are_explained(tmp_path):
    model = BUILDERS["lstm"]()
    write_run_directory(tmp_path / "run", model, "lstm", [])
    with pytest.raises(ValueError, match="no checkpoint in"):
        ntm.load(tmp_path / "run")
    group = tmp_path / "group"
    group.mkdir()
    (group / "seeds.json").write_text("{}")
    with pytest.raises(ValueError, match="group of seeds"):
        ntm.load(group)


# ----------------------------------------------------------------------------- pretrained


def copy_model(seed=0):
    task = tasks.get("copy", max_length=4)
    config = NTMConfig(input_size=task.input_size, output_size=task.output_size, memory_slots=8, memory_width=6,
                       controller_units=12)
    return NTM(config, rngs=nnx.Rngs(seed))


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A pretrained root with one untrained copy model, in place of the package's own."""
    root = tmp_path / "pretrained"
    monkeypatch.setattr(saving, "PRETRAINED_ROOT", root)
    model = copy_model(seed=5)
    rows = [{"length": 4, "cost": 31.5, "bit_errors": 15.0}, {"length": 8, "cost": 70.25, "bit_errors": 33.5}]
    saving.add_pretrained("copy", model, task="copy", task_options={"max_length": 4}, training_sequences=1234,
                          training_steps=150, wall_time=12.5, eval_key="length", eval_rows=rows)
    return root, model


def test_pretrained_returns_the_shipped_model_and_its_figures(shipped):
    root, model = shipped
    loaded = ntm.pretrained("copy")
    x = jnp.asarray(tasks.get("copy", max_length=4).sample(np.random.default_rng(0), 2).inputs)
    np.testing.assert_array_equal(loaded(x), model(x))
    index = json.loads((root / "index.json").read_text())["models"]
    assert index["copy"]["training_sequences"] == 1234 and index["copy"]["wall_time"] == 12.5
    assert index["copy"]["parameters"] == ntm.count_params(model) and index["copy"]["model"] == "ntm"
    assert saving.pretrained_entry("copy")["eval_rows"][1]["bit_errors"] == 33.5


def test_an_unknown_pretrained_name_lists_the_available_ones(shipped, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown pretrained model 'kopy'; available: copy"):
        ntm.pretrained("kopy")
    monkeypatch.setattr(saving, "PRETRAINED_ROOT", tmp_path / "nothing")
    with pytest.raises(ValueError, match="none are shipped"):
        ntm.pretrained("copy")


def test_add_pretrained_checks_the_model_fits_its_task(tmp_path):
    with pytest.raises(ValueError, match="do not fit task repeat_copy"):
        saving.add_pretrained("rc", copy_model(), task="repeat_copy", training_sequences=1, wall_time=1.0,
                              eval_key="length", eval_rows=[], root=tmp_path)
    with pytest.raises(ValueError, match="pretrained name"):
        saving.add_pretrained("../up", copy_model(), task="copy", training_sequences=1, wall_time=1.0,
                              eval_key="length", eval_rows=[], root=tmp_path)


def command_line():
    parser = argparse.ArgumentParser(prog="ntm")
    pretrained_command.add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_ntm_pretrained_prints_the_table_of_shipped_models(shipped, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one line per model, as in a wide terminal
    args = command_line().parse_args(["pretrained"])
    assert args.handler(args, Console(stderr=True)) == 0
    out = capsys.readouterr().out
    for text in ("copy", "ntm", "1,234", "12.5 s", "length 4: 15, 8: 33.5", f"{ntm.count_params(shipped[1]):,}"):
        assert text in out


def test_ntm_demo_draws_a_fresh_sample_and_prints_its_errors(shipped, tmp_path, capsys):
    out_png = tmp_path / "demo.png"
    args = command_line().parse_args(["demo", "copy", "--length", "3", "--seed", "2", "--out", str(out_png)])
    assert args.handler(args, Console(stderr=True)) == 0
    printed = capsys.readouterr().out
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out_png.stat().st_size > 10_000
    result = pretrained_command.demo("copy", 3, 2, tmp_path / "again.png")
    assert f"copy at length 3: {result.bit_errors} bit errors out of 24 scored bits" in printed
    # the same errors, counted here from the model's own outputs on the same sample
    task = tasks.get("copy", max_length=4)
    sample = pretrained_command.saving.pretrained("copy")
    from ntm.plots.runs import trace_model_sample

    traced = trace_model_sample(sample, task, 3, 2)
    wrong = ((traced.logits > 0) != (traced.batch.targets > 0.5)) & (traced.batch.mask[..., None] > 0)
    assert result.bit_errors == int(wrong.sum()) and result.scored_bits == 24
    assert result.cost > 0
    with pytest.raises(ValueError, match="ntm demo: unknown pretrained model 'sort'"):
        args = command_line().parse_args(["demo", "sort"])
        args.handler(args, Console(stderr=True))
