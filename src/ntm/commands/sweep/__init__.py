"""`ntm sweep`: a search over training and model settings on Ray Tune, each trial an ordinary ntm run.

    ntm sweep copy --samples 4 --sweep-dir sweeps/copy \\
        --search lr=loguniform:1e-4:1e-2 --search batch-size=choice:4,8,16 --search seed=grid:0,1,2 \\
        [any ntm train flag, fixed for every trial]

Ray Tune does the distributed work: the search space (`tune.loguniform`, `uniform`, `choice`,
`grid_search`), running trials side by side on the CPUs Ray grants them (`Tuner`, `TuneConfig`),
stopping poor trials early on the held-out cost (`ASHAScheduler`), population-based training
(`PopulationBasedTraining`: a poor trial continues a good one's run with perturbed training settings),
and continuing an interrupted sweep (`Tuner.restore`). Ray runs embedded by default (started and stopped by the command, local
addresses only); `--address` joins a running cluster instead.

What ntm adds is what Tune cannot know: a trial's settings are typed `TrainSettings`, those `ntm train`
makes of the fixed flags with the trial's searched values put in (`dataclasses.replace`, so every
value is checked as any setting is); it runs as one experiment as `ntm train` does (`ntm.experiment`:
train or resume, evaluate, report) into an ordinary run directory (so `ntm eval`, `ntm show` and
`ntm compare` work on it, and a trial that Tune resumes continues from the run's own checkpoint), and
it reports every held-out check to Tune. At the end the sweep writes a CSV, a figure, and a table,
best first.

One job a module:

  space     the searched flags and their distributions; each trial's settings, all checked before Ray starts
  tuner     Ray and Tune: starting Ray, the Tuner (every trial to its end, ASHA or PBT), trial names, progress
  trial     one trial in a Ray worker: an ntm experiment reporting its held-out checks (and, for PBT, snapshots
            of its run) to Tune; continuing another trial's run when PBT says so
  results   what the trials found: results.csv and the table, best first; the figure is
            `ntm.plots.figures.sweep_figure`
  command   `ntm sweep` itself: its flags, sweep.json, and the run from the first check to the table

Layout of the sweep directory DIR:

  sweep.json       the sweep as it was started: what `--resume` rebuilds it from
  ray/             Ray Tune's experiment state (what `Tuner.restore` reads)
  trials/NAME/     one ntm run directory per trial, NAME = trial number and searched values (as first drawn)
  results.csv      one row per trial: searched settings, outcome, steps, sequences, times, held-out figures
  sweep.png        held-out cost against training sequences, and each searched setting against time to solve

On a cluster, DIR must be at the same path on every machine (a shared file system), as Ray Tune
requires of its storage path, and every machine needs the same ntm installed.

Ray is an optional extra (`pip install -e ".[sweep]"`); nothing else in ntm imports it, and these
modules import it only when a sweep runs.
"""

from ntm.commands.usage import UsageError

SWEEP_FILE = "sweep.json"
TUNE_DIR = "ray"
TRIALS_DIR = "trials"
RESULTS_FILE = "results.csv"
FIGURE_FILE = "sweep.png"


def usage_error(message: str) -> UsageError:
    """A bad `ntm sweep` command line, reported in one line with exit status 2."""
    return UsageError(f"ntm sweep: {message}")
