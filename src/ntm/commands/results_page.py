"""The results page of `ntm reproduce` (docs/results.md): ours beside the paper's and other published figures.

From the reproduction's records alone (`ntm.commands.reproduce`, kept beside the page as
results/reproduction.json with each seed's thinned learning curve and each pair's pictures, drawn by
`draw_pair` when the pair finished), so the page can be made again after the run directories are gone:
  - one summary table: per task our NTM's figure, the paper's, the best other published one (`ntm.published`),
    and whether ours is better than each;
  - the budgets, the total wall time the reproduction took and the machine;
  - per task: every model's seeds certified, sequences and minutes to solve (median and worst over seeds),
    the generalisation table (best, median and worst seed), the published figures with their sources, one
    learning-curve figure of all models (median and spread over seeds), the generalisation pictures, and
    for priority sort and N-grams where the NTM writes and reads (the paper's Figures 17 and 15).
The summary's figures are pure functions of the records (`summary_rows`), so they are tested without training.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from ntm import published, tasks
from ntm.evaluate import number

INFINITE = math.inf


# ----------------------------------------------------------------------------- figures of a pair's seeds


def solve_figures(record: dict[str, Any]) -> dict[str, Any]:
    """How a pair's seeds did: seeds, certified, and median and worst sequences and seconds to be certified
    (a seed not certified counts as never: infinite, so the median is finite only if most seeds were)."""
    seeds = record["seeds"]
    sequences = [seed["solved_sequences"] if seed["solved"] and seed["solved_sequences"] else INFINITE for seed in seeds]
    seconds = [seed["solved_seconds"] if seed["solved"] and seed["solved_seconds"] is not None else INFINITE
               for seed in seeds]
    return {"seeds": len(seeds), "certified": sum(bool(seed["solved"]) for seed in seeds),
            "median_sequences": statistics.median(sequences), "worst_sequences": max(sequences),
            "median_seconds": statistics.median(seconds), "worst_seconds": max(seconds)}


def seed_costs_at(record: dict[str, Any], value: int) -> list[float]:
    """Each seed's cost per sequence at test value `value` of its final table (infinite where it has no row)."""
    key = record["key"]
    return [next((row["cost"] for row in seed["rows"] if row[key] == value), INFINITE) for seed in record["seeds"]]


def ours(task: str, record: dict[str, Any] | None) -> tuple[float | None, str]:
    """Our NTM's figure in the measure of the paper's (its number, or None, and in words)."""
    if record is None:
        return None, "not run"
    figure = published.paper_figure(task)
    solved = solve_figures(record)
    of = f"{solved['certified']}/{solved['seeds']} seeds certified"
    if figure is not None and figure.measure == "cost":
        costs = seed_costs_at(record, figure.at)
        median = statistics.median(costs)
        if not math.isfinite(median):
            return None, f"no final table at {record['key']} {figure.at}; {of}"
        return median, (f"{number(median)} bits per sequence at {record['key']} {figure.at} (median of "
                        f"{len(costs)} seeds; best {number(min(costs))}); {of}")
    median, worst = solved["median_sequences"], solved["worst_sequences"]
    # what the seeds not certified did train (a cap in minutes may end them before the budget's sequences)
    trained = min((seed["sequences"] for seed in record["seeds"] if not seed["solved"]), default=0)
    if not math.isfinite(median):
        return None, f"not solved: {of} within {trained:,} sequences"
    worst_text = f"{worst:,.0f}" if math.isfinite(worst) else f"not certified within {trained:,}"
    return median, f"{median:,.0f} sequences to certified (median; worst {worst_text}); {of}"


def beats_text(outcome: bool | None) -> str:
    return {True: "yes", False: "no", None: "—"}[outcome]


def summary_rows(records: dict[str, dict], task_names: list[str]) -> list[list[str]]:
    """The summary table's rows: task, our NTM, the paper's, the best other published, and whether ours
    beats each ("yes" only where ours is a finished figure strictly better; "—" where none is comparable)."""
    rows = []
    for task in task_names:
        value, text = ours(task, records.get(f"{task}-ntm"))
        paper, other = published.paper_figure(task), published.best_other(task)
        rows.append([task, text, paper.value_text if paper else "—",
                     f"{other.value_text} ({other.source})" if other else "—",
                     beats_text(published.beats(value, paper)), beats_text(published.beats(value, other))])
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)]


def format_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 2 * 3600 else f"{seconds / 3600:.1f} h"


def format_count(value: float) -> str:
    return f"{value:,.0f}" if math.isfinite(value) else "not certified"


# ----------------------------------------------------------------------------- the page


def summary_section(records: dict[str, dict], plan) -> list[str]:
    lines = ["## Summary", "", *markdown_table(
        ["task", "ours (NTM)", "the paper's NTM", "best other published", "beats the paper", "beats the best other"],
        summary_rows(records, list(plan.tasks))), ""]
    lines += ["Compared on copy, repeat copy and associative recall: training sequences until solved. Ours is "
              "the median over seeds of the sequences at which the stop rule certified a seed (a seed not "
              "certified counts as never), a stricter test than a curve near 0 read off a published plot. On "
              "N-grams and priority sort: cost per sequence in bits at the training difficulty, the median "
              "over seeds of each seed's final table on fresh sequences. Published figures read off plots are "
              "approximate; where a source gives a range the better end is taken. \"no\" wherever ours is not "
              "strictly better or not finished; \"—\" where nothing published is in our units.", ""]
    return lines


def budget_section(records: dict[str, dict], plan) -> list[str]:
    header = ["task", *plan.models]
    rows, ended_by_time = [], []  # the latter: shares of the budget's sequences that runs the time cap ended reached
    for task in plan.tasks:
        cells = [task]
        for model in plan.models:
            record = records.get(f"{task}-{model}")
            if record is None:
                cells.append("not run")
                continue
            budget = record["budget"]
            cell = (f"{len(record['seeds'])} x {budget['sequences']:,} sequences or {budget['minutes']:g} min"
                    f" (took {format_time(record['elapsed_seconds'])}")
            capped = [seed["sequences"] for seed in record["seeds"]
                      if not seed["solved"] and seed["sequences"] < budget["sequences"]]
            if capped:
                cell += f"; the time cap ended it at {int(statistics.median(capped)):,} sequences"
                ended_by_time.append((min(capped) / budget["sequences"], f"{task}-{model}",
                                      min(capped) / max(record["elapsed_seconds"], 1e-9)))
            cells.append(cell + ")")
        rows.append(cells)
    time_note = []
    if ended_by_time:
        share, name, speed = min(ended_by_time)
        time_note = [f"Where the time cap ended a run before its sequences, the cell gives the sequences it reached "
                     f"(the median over its seeds); the least, {name}, reached {100 * share:.1f} % of its budget at "
                     f"{speed:.0f} sequences per second. This machine is too slow for those runs; their rows below "
                     f"are what the cap allowed, not what the model can reach.", ""]
    return ["## Budgets", "", "Per seed, training sequences or minutes, whichever ended first; a seed also "
            "stopped once certified solved. Seeds of a pair trained side by side, so their minutes are those of "
            "the whole group.", "", *markdown_table(header, rows), "", *time_note,
            "The whole set takes hours on two cores (`ntm reproduce --dry-run` prints the bound and what is "
            "left). It resumes where it stopped and keeps its records beside this page, so it can be made over "
            "several sittings. On a larger machine `ntm reproduce --ray` runs the pairs side by side as Ray "
            "tasks (a core per seed), and `ntm reproduce --address HEAD_IP:6379` spreads them over a Ray cluster "
            "started with `ray start --head` (the same set-up as `ntm sweep`; `--out` and `--page` on a file "
            "system every machine shares). Ray is optional: `pip install -e \".[sweep]\"`.", ""]


def model_rows(task_object, present: list[dict]) -> list[list[str]]:
    rows = []
    for record in present:
        solved = solve_figures(record)
        best = record["seeds"][record["best"]]
        trained = statistics.median(seed["sequences"] for seed in record["seeds"])
        rows.append([record["model"], f"{record['parameters']:,}" if record["parameters"] else "-",
                     f"{solved['certified']}/{solved['seeds']}",
                     f"{format_count(solved['median_sequences'])} / {format_count(solved['worst_sequences'])}",
                     f"{format_time(solved['median_seconds'])} / {format_time(solved['worst_seconds'])}",
                     f"{trained:,.0f}", best["verdict"], task_object.PAPER_RESULTS.get(record["model"], "-")])
    return rows


def generalisation_rows(task_object, present: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Columns per model (best seed; with several seeds also the median and worst), rows per test value."""
    metric = task_object.solve_metric
    key = task_object.generalisation_key
    header, columns = [key], []
    for record in present:
        by_seed = [{row[key]: row for row in seed["rows"]} for seed in record["seeds"]]
        best = by_seed[record["best"]]
        columns.append((f"{record['model']} best", lambda value, best=best: best.get(value)))
        if len(by_seed) > 1:
            for word, pick in (("median", statistics.median), ("worst", max)):
                def cell(value, by_seed=by_seed, pick=pick):
                    found = [rows[value][metric] for rows in by_seed if value in rows]
                    return {metric: pick(found), "in_training_range": True} if len(found) == len(by_seed) else None
                columns.append((f"{record['model']} {word}", cell))
    values = sorted({row[key] for record in present for seed in record["seeds"] for row in seed["rows"]})
    inside = {row[key]: row["in_training_range"] for record in present for seed in record["seeds"]
              for row in seed["rows"]}
    rows = []
    for value in values:
        cells = [f"{value}" + ("" if inside[value] else "*")]
        for _, cell in columns:
            row = cell(value)
            cells.append("-" if row is None else (f"{row[metric]:+.2f}" if metric == "excess_cost" else number(row[metric])))
        rows.append(cells)
    return header + [title for title, _ in columns], rows


def draw_pair(plan, record: dict[str, Any]) -> list[dict[str, str]]:
    """The pictures of a finished pair's best seed, drawn into the page's image folder while its run directory
    is at hand: the generalisation pictures (NTM and LSTM) and, for the NTM on priority sort and N-grams,
    where it writes and reads. Each is {"file": the PNG's name, "caption": what it shows, with its figures}."""
    from ntm.plots.reproduction import plot_ngram_contexts, plot_priority_sort_addressing
    from ntm.plots.runs import show_run

    task, model = record["task"], record["model"]
    task_object = tasks.get(task)
    image_dir = plan.image_dir
    best_dir = plan.out / record["seeds"][record["best"]]["run_dir"]
    pictures = []
    for value in task_object.PICTURE_VALUES if model in ("ntm", "lstm") else ():
        shown = show_run(best_dir, value, out=image_dir / f"{task}-{model}-{value}.png")
        pictures.append({"file": shown.path.name, "caption": f"{model} (best seed), {task_object.generalisation_key} "
                                                             f"{value}: {shown.bit_errors} bit errors of {shown.scored_bits}"})
    if model == "ntm" and task in ("priority_sort", "ngrams"):
        out = image_dir / f"{task}-ntm-addressing.png"
        if task == "priority_sort":
            found = plot_priority_sort_addressing(best_dir, out)
            words = (f"Where the best NTM seed writes each item against its priority, and reads at each output "
                     f"step (the paper's Figure 17): write location and priority correlate at "
                     f"{found.correlation:+.2f}, over {found.distinct} distinct locations.")
        else:
            found = plot_ngram_contexts(best_dir, out)
            words = (f"The best NTM seed's mean read weighting for each 5-bit context, and its write weighting "
                     f"one step later (the paper's Figure 15): the {found.contexts} contexts seen read "
                     f"{found.distinct} distinct slots, and {found.correlation:.0%} of reads are at their "
                     "context's slot.")
        pictures.append({"file": found.path.name, "caption": words})
    return pictures


def task_section(task: str, present: list[dict], plan, image_dir: Path) -> list[str]:
    from ntm.plots.reproduction import curve_records, plot_seed_curves

    task_object = tasks.get(task)
    metric_words = ("bits above the Bayes-optimal cost" if task_object.solve_metric == "excess_cost"
                    else task_object.solve_metric.replace("_", " ")) + " per sequence"
    lines = [f"## {task}", "", f"Solved: {task_object.solve_description}. Why: {task_object.solve_reason}.", "",
             *markdown_table(["model", "parameters", "seeds certified", "sequences to solve (median / worst)",
                              "time to solve (median / worst)", "sequences trained (median)", "best seed's verdict",
                              "paper"], model_rows(task_object, present)), ""]
    header, rows = generalisation_rows(task_object, present)
    lines += [f"Final tables, {metric_words} on {plan.eval_sequences:,} fresh sequences per value or more (* outside "
              "the training range):", "", *markdown_table(header, rows), ""]
    figures = published.figures(task)
    if figures:
        lines += ["Published:", ""] + [f"- {figure.source}: {figure.text}. Source: {figure.where}." for figure in figures]
        lines.append("")
    curves = {record["model"]: [curve_records(seed["curve"]) for seed in record["seeds"]] for record in present}
    path = plot_seed_curves(curves, image_dir / f"{task}-learning.png",
                            f"{task}: training cost and bit errors (median and spread over seeds)")
    lines += [f"![{task} learning curves](results/{path.name})", ""]
    for record in present:
        for picture in record["pictures"]:
            lines += [picture["caption"], "", f"![{Path(picture['file']).stem}](results/{picture['file']})", ""]
    return lines


def write_page(plan, records: dict[str, dict]) -> Path:
    """The results page of `plan` (`reproduce.page_plan`: the plan's pairs and every recorded one) from its
    records (see the module docstring); returns its path."""
    image_dir = plan.image_dir
    total = sum(record["elapsed_seconds"] for record in records.values())
    machines = sorted({record["machine"] for record in records.values()})
    lines = ["# The paper's five tasks, reproduced", "",
             f"Generated by `{plan.flags()}`. The reproduction took {format_time(total)} of wall time in all "
             f"({len(records)} run{'' if len(records) == 1 else 's'}, training and evaluation, summed over the runs; one after another unless "
             f"`--ray` ran them side by side) on "
             f"{'; '.join(machines) or 'no machine yet'}. Every model trains on its task's defaults within the "
             f"task's budget; every seed is then judged on {plan.eval_sequences:,} or more fresh sequences per test "
             "value. \"Certified\" means the stop rule certified the seed solved at 95 % confidence on fresh "
             "held-out sequences (`ntm.training.certify`).", ""]
    lines += summary_section(records, plan) + budget_section(records, plan)
    for task in plan.tasks:
        present = [records[f"{task}-{model}"] for model in plan.models if f"{task}-{model}" in records]
        if present:
            lines += task_section(task, present, plan, image_dir)
    plan.page.parent.mkdir(parents=True, exist_ok=True)
    plan.page.write_text("\n".join(lines) + "\n")
    return plan.page
