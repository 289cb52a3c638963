"""Tests of ntm.plots: every kind of figure is a sensible PNG, and the numbers behind each are the
ones the model traced or the run logged; `ntm show`, `ntm compare` and `ntm report` on a small
trained run, and one-line errors for bad run directories and lengths."""

import json
import shutil
from pathlib import Path

import jax
import matplotlib.image
import numpy as np
import pytest
from flax import nnx

from ntm import metrics, models, rundir, tasks
from ntm.commands import cli
from ntm.evaluate import evaluate_run, load_run
from ntm.plots import figures, runs
from ntm.training import TrainSettings, train
from ntm.training.records import parse_records
from ntm.turing.cell import NTMStepTrace

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_sensible_png(path, min_width=500, min_height=250):
    """A real PNG of reasonable size that is not one flat colour."""
    path = Path(path)
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert min_width <= width <= 4000 and min_height <= height <= 6000, (width, height)
    assert pixels[..., :3].std() > 0.05
    return pixels


def random_model(name, task, **options):
    spec = models.get(name)
    config = spec.config_class.from_dict({"input_size": task.input_size, "output_size": task.output_size, **options})
    return spec.model_class(config, rngs=nnx.Rngs(0))


def traced(name, task, length, **options):
    batch = task.sample(np.random.default_rng(1), 2, **task.eval_difficulty(length))
    graphdef, params = nnx.split(random_model(name, task, **options), nnx.Param)
    logits, trace = runs.traced_forward(graphdef, params, batch.inputs, batch.lengths, jax.random.key(0))
    return batch, np.asarray(logits), jax.device_get(trace)


def axes_by_label(figure):
    return {axes.get_label(): axes for axes in figure.axes if axes.get_label()}


def image_of(axes):
    return np.asarray(axes.images[0].get_array())


@pytest.fixture(scope="module")
def trained_run(trained_tiny_run, tmp_path_factory):
    """The tiny run of conftest.py (an NTM trained for 10 steps on copy of lengths 1-3), copied for this
    module's figures and reports, evaluated at lengths 2 and 4."""
    run_dir = Path(shutil.copytree(trained_tiny_run, tmp_path_factory.mktemp("plots") / "ntm-run"))
    _, eval_rows = evaluate_run(run_dir, [2, 4], sequences=100)
    return run_dir, eval_rows


# ----------------------------------------------------------------------------- pure figures


def test_trace_figure_draws_exactly_what_the_ntm_traced(tmp_path):
    task = tasks.get("copy", max_length=6)
    batch, logits, trace = traced("ntm", task, 5, memory_slots=12, memory_width=6, controller_units=16,
                                  read_heads=2, write_heads=1)
    index = 1
    steps = int(batch.lengths[index])
    figure = figures.trace_figure(batch, logits, trace, "copy: ntm at length 5", index=index)
    axes = axes_by_label(figure)
    for name in ("write_weights/0", "read_weights/0", "read_weights/1", "add/0", "erase/0", "reads/0", "reads/1"):
        field, head = name.split("/")
        np.testing.assert_allclose(image_of(axes[name]), getattr(trace, field)[index, :steps, int(head)].T)
    np.testing.assert_allclose(image_of(axes["inputs"]), batch.inputs[index, :steps].T)
    np.testing.assert_allclose(image_of(axes["targets"]), batch.targets[index, :steps].T)
    np.testing.assert_allclose(image_of(axes["outputs"]), jax.nn.sigmoid(logits[index, :steps]).T, atol=1e-6)
    # The memory is the one after the delimiter step, the last one before the answer is scored.
    assert figures.scored_phase_end(batch.mask[index, :steps]) == 5
    np.testing.assert_allclose(image_of(axes["memory"]), trace.memory[index, 5])
    # One red box per wrong scored bit, as metrics.bit_errors counts them.
    boxes = [c for c in axes["outputs"].collections if c.get_label() == "bit_errors"][0]
    expected = metrics.bit_errors(logits, batch.targets, batch.mask)[index]
    assert len(boxes.get_paths()) == int(expected)
    assert figure.get_suptitle() == "copy: ntm at length 5"
    assert_sensible_png(figures.save_figure(figure, tmp_path / "ntm.png"))


def test_trace_figure_of_the_lstm_has_no_memory_panels(tmp_path):
    task = tasks.get("copy", max_length=4)
    batch, logits, trace = traced("lstm", task, 4, layers=1, units=10)
    figure = figures.trace_figure(batch, logits, trace, "copy: lstm")
    labels = set(axes_by_label(figure))
    assert {"inputs", "targets", "outputs", "hidden"} <= labels
    assert not labels & {"memory", "write_weights/0", "read_weights/0", "add/0"}
    np.testing.assert_allclose(image_of(axes_by_label(figure)["hidden"]), trace.hidden[0, : batch.lengths[0]].T)
    assert_sensible_png(figures.save_figure(figure, tmp_path / "lstm.png"))
    assert_sensible_png(figures.plot_trace(batch, logits, None, "copy: no trace", tmp_path / "bare.png"), min_height=150)


def test_trace_figure_of_the_dnc_adds_usage_allocation_and_read_modes(tmp_path):
    task = tasks.get("copy", max_length=4)
    batch, logits, trace = traced("dnc", task, 3, memory_slots=8, memory_width=5, controller_units=16)
    figure = figures.trace_figure(batch, logits, trace, "copy: dnc")
    axes = axes_by_label(figure)
    steps = int(batch.lengths[0])
    np.testing.assert_allclose(image_of(axes["usage"]), trace.usage[0, :steps].T)
    np.testing.assert_allclose(image_of(axes["allocation"]), trace.allocation[0, :steps].T)
    np.testing.assert_allclose(image_of(axes["read_modes/0"]), trace.read_modes[0, :steps, 0].T)
    np.testing.assert_allclose(image_of(axes["write_weights/0"]), trace.write_weights[0, :steps, 0].T)
    assert "memory" in axes
    assert_sensible_png(figures.save_figure(figure, tmp_path / "dnc.png"))


def test_trace_figure_of_a_long_sequence_stays_compact(tmp_path):
    # Random arrays of the paper's sizes (N=128, M=20) stand in for a trace: the figure is pure.
    task = tasks.get("copy", max_length=120)
    batch = task.sample(np.random.default_rng(0), 1, **task.eval_difficulty(120))
    rng = np.random.default_rng(1)
    steps, slots, width = batch.inputs.shape[1], 128, 20
    weights = rng.dirichlet(np.ones(slots), size=(1, steps, 1)).astype(np.float32)
    vectors = lambda: rng.uniform(-1, 1, (1, steps, 1, width)).astype(np.float32)
    trace = NTMStepTrace(weights, weights, vectors(), rng.uniform(0, 1, (1, steps, 1, width)), vectors(),
                         rng.normal(size=(1, steps, slots, width)).astype(np.float32))
    logits = rng.normal(size=batch.targets.shape).astype(np.float32)
    pixels = assert_sensible_png(figures.plot_trace(batch, logits, trace, "copy: ntm at length 120",
                                                    tmp_path / "long.png"))
    assert pixels.shape[1] <= 1600 and pixels.shape[0] <= 2200


def synthetic_metrics():
    rows = []
    for step in range(5, 61, 5):
        rows.append({"step": step, "sequences": step * 8, "cost": 40.0 / step, "bit_errors": 20.0 / step,
                     "level": int(step > 30), "lr": 1e-3, "time": step * 0.1})
        if step % 20 == 0:
            rows.append({"step": step, "event": "held_out", "sequences": step * 8, "level": 0, "cost": 50.0 / step,
                         "bit_errors": 25.0 / step})
    rows.insert(3, {"step": 17, "sequences": 136, "cost": float("nan"), "bit_errors": float("nan")})
    rows.append({"step": 30, "event": "level", "level": 1, "sequences": 240, "difficulty": {}})
    rows.append({"step": 60, "event": "solved", "sequences": 480, "time": 6.0})
    return rows


def test_learning_curve_points_are_the_metrics_rows(tmp_path):
    rows = synthetic_metrics()
    other = [dict(row, cost=row["cost"] * 2) for row in rows if "event" not in row]
    figure = figures.learning_curve_figure({"ntm": parse_records(rows), "lstm": parse_records(other)},
                                           "copy: ntm vs lstm")
    lines = {line.get_gid(): line for axes in figure.axes for line in axes.lines if line.get_gid()}
    training = [row for row in rows if "event" not in row and np.isfinite(row["cost"])]
    np.testing.assert_array_equal(lines["cost/ntm"].get_xdata(), [row["sequences"] for row in training])
    np.testing.assert_allclose(lines["cost/ntm"].get_ydata(), [row["cost"] for row in training])
    np.testing.assert_allclose(lines["bit_errors/ntm"].get_ydata(), [row["bit_errors"] for row in training])
    np.testing.assert_allclose(lines["cost/lstm"].get_ydata(), [row["cost"] for row in other if np.isfinite(row["cost"])])
    held = [row for row in rows if row.get("event") == "held_out"]
    np.testing.assert_allclose(lines["held_out_cost/ntm"].get_ydata(), [row["cost"] for row in held])
    level_lines = [line for axes in figure.axes for line in axes.lines if line.get_gid() == "level/ntm"]
    assert level_lines and all(line.get_xdata()[0] == 240 for line in level_lines)
    assert lines["solved/ntm"].get_xdata()[0] == 480
    cost_axes = axes_by_label(figure)["cost"]
    assert cost_axes.get_yscale() == "log" and cost_axes.get_ylabel() == "cost per sequence (bits)"
    assert axes_by_label(figure)["bit_errors"].get_xlabel() == "sequences seen"
    assert_sensible_png(figures.plot_learning_curves({"ntm": parse_records(rows)}, tmp_path / "curve.png", "copy: ntm"))


def test_generalisation_points_are_the_eval_rows(tmp_path):
    rows = [{"length": 30, "cost": 9.0, "bit_errors": 3.0}, {"length": 10, "cost": 0.01, "bit_errors": 0.0},
            {"length": 20, "cost": 0.5, "bit_errors": 0.1}]
    figure = figures.generalisation_figure(rows, "length", "copy: ntm: generalisation", trained_range=(1, 20))
    lines = {line.get_gid(): line for axes in figure.axes for line in axes.lines if line.get_gid()}
    np.testing.assert_array_equal(lines["eval_cost/"].get_xdata(), [10, 20, 30])
    np.testing.assert_allclose(lines["eval_cost/"].get_ydata(), [0.01, 0.5, 9.0])
    np.testing.assert_allclose(lines["eval_bit_errors/"].get_ydata(), [0.0, 0.1, 3.0])
    assert axes_by_label(figure)["cost"].get_xlabel() == "sequence length"
    assert_sensible_png(figures.plot_generalisation(rows, "length", tmp_path / "gen.png", trained_range=(1, 20)))
    with pytest.raises(ValueError, match="lacks"):
        figures.plot_generalisation([{"items": 3}], "length", tmp_path / "bad.png")
    with pytest.raises(ValueError, match="PNG"):
        figures.plot_generalisation(rows, "length", tmp_path / "gen.pdf")


def test_sweep_figure_draws_each_trials_curve_and_time_to_solve(tmp_path):
    """Three trials, best first: two solved (the curves end in a star), one not (hollow, on the 'not solved'
    line above the slowest solve); a choice search spaced by its listed values, a loguniform one on a log axis."""
    from types import SimpleNamespace

    searches = [SimpleNamespace(name="batch-size", kind="choice", values=(4, 16)),
                SimpleNamespace(name="lr", kind="loguniform", values=(1e-4, 1e-2))]
    rows = [{"trial": "00001", "batch-size": 16, "lr": 0.01, "solved": True, "time_to_solve_s": 20.0},
            {"trial": "00000", "batch-size": 4, "lr": 0.003, "solved": True, "time_to_solve_s": 40.0},
            {"trial": "00002", "batch-size": 4, "lr": 0.0001, "solved": False, "time_to_solve_s": float("nan")}]
    curves = {"00001": [(160, 30.0), (320, 0.5)], "00000": [(80, 40.0), (160, 2.0), (240, 0.01)],
              "00002": [(80, 50.0), (160, 49.0)]}
    figure = figures.sweep_figure(rows, curves, searches, "ntm sweep of copy")
    axes = axes_by_label(figure)
    lines = axes["held_out_cost"].lines
    assert [list(line.get_xdata()) for line in lines] == [[160, 320], [80, 160, 240], [80, 160]]
    assert [line.get_marker() for line in lines] == ["*", "*", "None"]
    assert lines[0].get_label().startswith("#1 batch-size=16, lr=0.01")
    top = 40.0 * 1.15  # the 'not solved' line: above the slowest solve
    points = [tuple(collection.get_offsets()[0]) for collection in axes["time_to_solve/batch-size"].collections]
    assert [round(y, 6) for _, y in points] == [20.0, 40.0, round(top, 6)]
    assert [round(x) for x, _ in points] == [1, 0, 0]  # 16 is the second listed value, 4 the first
    assert axes["time_to_solve/lr"].get_xscale() == "log"
    assert [tuple(c.get_offsets()[0])[0] for c in axes["time_to_solve/lr"].collections] == [0.01, 0.003, 0.0001]
    assert figures.setting_text(0.0031622) == "0.00316" and figures.setting_text(16) == "16"
    assert_sensible_png(figures.save_figure(figure, tmp_path / "sweep.png"))


# ----------------------------------------------------------------------------- run directories


def test_show_draws_the_trace_of_the_trained_model(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    out = tmp_path / "show.png"
    assert cli.main(["show", str(run_dir), "--length", "4", "--seed", "2", "--out", str(out)]) == 0
    assert "bit errors" in capsys.readouterr().out
    assert_sensible_png(out)
    # The sample the command draws is the model's own trace of that batch.
    run = load_run(run_dir)
    sample = runs.trace_sample(run, 4, seed=2)
    assert sample.batch.inputs.shape == (1, 9, 9) and sample.value == 4
    logits, trace = run.model(sample.batch.inputs, lengths=sample.batch.lengths, trace=True, rngs=jax.random.key(2))
    np.testing.assert_allclose(sample.trace.write_weights, trace.write_weights, atol=1e-6)
    np.testing.assert_allclose(sample.logits, logits, atol=1e-6)


@pytest.mark.parametrize("arguments, message", [
    (["show", "{missing}"], "does not exist"),
    (["show", "{empty}"], "is not an ntm run directory"),
    (["show", "{run}", "--length", "0"], "length must be an integer >= 1"),
    (["show", "{run}", "--length", "5000"], "ntm show draws at most"),
    (["show", "{run}", "--out", "{tmp}/figure.jpg"], "must be a .png file"),
    (["show", "{run}", "--length", "two"], "invalid int value"),
    (["compare", "{run}", "{missing}"], "does not exist"),
    (["compare", "{run}", "{run}", "--labels", "a"], "need 2 distinct labels"),
    (["report", "{empty}"], "is not an ntm run directory"),
])
def test_bad_run_directories_and_lengths_give_one_line_errors(trained_run, tmp_path, capsys, arguments, message):
    run_dir, _ = trained_run
    (tmp_path / "empty").mkdir()
    places = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "run": run_dir, "tmp": tmp_path}
    argv = [argument.format(**places) for argument in arguments]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error


def test_compare_puts_runs_on_one_plot_and_their_eval_tables_side_by_side(trained_run, tmp_path, capsys):
    run_dir, eval_rows = trained_run
    # A second run that differs only in its seed, with its own log and no eval.json.
    other = tmp_path / "other"
    other.mkdir()
    config = json.loads((run_dir / "config.json").read_text())
    config["settings"]["seed"] = 1
    (other / "config.json").write_text(json.dumps(config))
    rows = synthetic_metrics()
    (other / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "compare.png"
    assert cli.main(["compare", str(run_dir), str(other), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "seed=0" in captured.out and "seed=1" in captured.out
    assert f"{eval_rows[0]['cost']:.3f}" in captured.out
    assert "has no eval.json" in " ".join(captured.err.split())
    assert_sensible_png(out)
    comparison = runs.compare_runs([run_dir, other], tmp_path / "again.png", labels=["first", "second"])
    assert comparison.labels == ["first", "second"]
    figure = figures.comparison_figure({"first": parse_records(rundir.read_metrics(run_dir)),
                                        "second": parse_records(rows)},
                                       {"first": eval_rows}, "length", "copy")
    lines = {line.get_gid(): line for axes in figure.axes for line in axes.lines if line.get_gid()}
    training = [row for row in rundir.read_metrics(run_dir) if "event" not in row]
    np.testing.assert_allclose(lines["cost/first"].get_ydata(), [row["cost"] for row in training])
    np.testing.assert_array_equal(lines["cost/second"].get_xdata(),
                                  [row["sequences"] for row in rows if "event" not in row and np.isfinite(row["cost"])])
    np.testing.assert_allclose(lines["eval_cost/first"].get_ydata(), [row["cost"] for row in eval_rows])
    assert "generalisation_cost" in axes_by_label(figure)


def test_report_holds_the_learning_curve_generalisation_trace_config_and_times(trained_run):
    run_dir, eval_rows = trained_run
    path = runs.write_report(run_dir, eval_rows)
    assert path == run_dir / "report.md"
    text = path.read_text()
    config = json.loads((run_dir / "config.json").read_text())
    for png in ("learning_curve.png", "generalisation.png", "show.png"):
        assert f"]({png})" in text
        assert_sensible_png(run_dir / png)
    assert f"Parameters: {config['parameters']:,}." in text
    wall = [row for row in rundir.read_metrics(run_dir) if "event" not in row][-1]["time"]
    assert runs.format_duration(wall) in text
    assert "| memory_slots | `16` |" in text and "| batch_size | `8` |" in text
    row = eval_rows[1]
    assert f"| 4 | {row['sequences']:,} | {row['failures']:,} | {row['cost']:.3f} |" in text
    assert "\n\nNot solved: length 2: " in text and "after 10 steps (80 sequences)" in text
    # The sample is drawn at the training maximum by default.
    assert "## One sample at length 3" in text
    # Without eval rows the report reads eval.json, which evaluate_run wrote.
    first = eval_rows[0]
    assert (f"| 2 | {first['sequences']:,} | {first['failures']:,} | {first['cost']:.3f} |"
            in runs.write_report(run_dir).read_text())
