"""Run repeat-copy configurations one after another on one pinned core and append each result to
docs/experiments/repeat-copy.md as it finishes (issue 19), so an interrupted session loses nothing.

    python benchmarks/repeat_copy_queue.py NAME "FLAGS" [NAME "FLAGS" ...]
    python benchmarks/repeat_copy_queue.py --summarise runs/rc/NAME "FLAGS"   # only append the table row

Each configuration is one `ntm train repeat_copy FLAGS --run-dir runs/rc/NAME` (give --seeds K in FLAGS
for K seeds in one process), run under `flock /tmp/ntm-cpu0.lock taskset -c 0`. Per seed the row gives
the training sequences and minutes until the held-out error at 10 x 10 first fell under PLATEAU_EXIT
bits (left the ~300-bit plateau), until the stop rule passed (solved), the last check, and how often a
check after leaving the plateau was back above RELAPSE bits.
"""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "experiments" / "repeat-copy.md"
PLATEAU_EXIT = 10.0  # bit errors per sequence at 10 x 10; the plateau sits at ~300
RELAPSE = 10.0


def seed_rows(run_dir: Path) -> list[dict]:
    dirs = sorted(run_dir.glob("seed-*"), key=lambda d: int(d.name.split("-")[1])) or [run_dir]
    rows = []
    for d in dirs:
        config = json.loads((d / "config.json").read_text())
        events = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
        checks = [e for e in events if e.get("event") == "held_out"]
        solved = next((e for e in events if e.get("event") == "solved"), None)
        exit_ = next((c for c in checks if c["bit_errors"] < PLATEAU_EXIT), None)
        relapses = sum(1 for c in checks if exit_ and c["step"] > exit_["step"] and c["bit_errors"] > RELAPSE)
        train = [e for e in events if "event" not in e]
        rows.append({
            "seed": config["settings"]["seed"],
            "exit": exit_ and (exit_["sequences"], exit_["time"] / 60),
            "solved": solved and (solved["sequences"], solved["time"] / 60),
            "last": checks[-1]["bit_errors"] if checks else float("nan"),
            "sequences": train[-1]["sequences"] if train else 0,
            "minutes": train[-1]["time"] / 60 if train else 0.0,
            "relapses": relapses,
        })
    return rows


def spread(values: list[float], total: int, fmt: str) -> str:
    """median and worst over `total` seeds; a seed that never got there counts as worst (>)."""
    if not values:
        return "—"
    if len(values) < total:
        return f"median {'>' if len(values) <= total // 2 else ''}{fmt.format(sorted(values)[min(total // 2, len(values) - 1)])}" \
               f", worst > budget ({len(values)}/{total})"
    return f"median {fmt.format(statistics.median(values))}, worst {fmt.format(max(values))}"


def summarise(name: str, flags: str, run_dir: Path, wall: float | None) -> str:
    rows = seed_rows(run_dir)
    n = len(rows)
    exits = [r["exit"] for r in rows if r["exit"]]
    solves = [r["solved"] for r in rows if r["solved"]]
    per_seed = "; ".join(
        f"s{r['seed']}: " + (f"out {r['exit'][0]:,}" if r["exit"] else "plateau")
        + (f", solved {r['solved'][0]:,} ({r['solved'][1]:.1f} min)" if r["solved"]
           else f", last {r['last']:.3g} at {r['sequences']:,}")
        + (f", {r['relapses']} relapses" if r["relapses"] else "")
        for r in rows)
    line = (f"| {name} | `{flags}` | {n} | {len(exits)}/{n}: {spread([e[0] for e in exits], n, '{:,.0f}')} seq |"
            f" {len(solves)}/{n}: {spread([s[0] for s in solves], n, '{:,.0f}')} seq, "
            f"{spread([s[1] for s in solves], n, '{:.1f}')} min | {per_seed} |"
            + (f" {wall / 60:.1f} |" if wall is not None else " |"))
    return line


def append(line: str) -> None:
    with RESULTS.open("a") as f:
        f.write(line + "\n")
    subprocess.run(["git", "-C", str(ROOT), "add", str(RESULTS)], check=False)
    subprocess.run(["git", "-C", str(ROOT), "commit", "-q", "-m", f"repeat-copy experiments: {line[:60]}"],
                   check=False)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--summarise"]:
        run_dir, flags = Path(argv[1]), argv[2] if len(argv) > 2 else "(see config.json)"
        append(summarise(run_dir.name, flags, run_dir, None))
        return 0
    pairs = list(zip(argv[0::2], argv[1::2]))
    for name, flags in pairs:
        run_dir = ROOT / "runs" / "rc" / name
        command = (["flock", "/tmp/ntm-cpu0.lock", "taskset", "-c", "0", "env", "NTM_HOST_DEVICES=1",
                    sys.executable, "-m", "ntm.commands.cli", "train", "repeat_copy", *shlex.split(flags),
                    "--run-dir", str(run_dir), "--quiet", "--eval-lengths", "10", "--eval-sequences", "100"])
        start = time.time()
        done = subprocess.run(command, cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")},
                              capture_output=True, text=True)
        (run_dir / "queue.log").parent.mkdir(parents=True, exist_ok=True)
        (run_dir / "queue.log").write_text(done.stdout + done.stderr)
        try:
            append(summarise(name, flags, run_dir, time.time() - start))
        except (OSError, ValueError, KeyError, StopIteration) as error:
            append(f"| {name} | `{flags}` | failed: exit {done.returncode}, {error} | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
