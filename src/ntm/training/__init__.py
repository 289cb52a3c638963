"""Training: settings, the pure step, the held-out judge, curricula, logs, the run directory, and the one loop.

    from ntm.training import TrainSettings, train
    result = train(TrainSettings.for_task("copy"), run_dir="runs/copy", seeds=1)

| module | what it holds |
|---|---|
| `settings` | `TrainSettings` (every choice, with its help text) and each task's defaults |
| `state` | `TrainState`: the stacked params and optimizer state (learning rate included); a seed's `Progress` |
| `step` | the optimizer and the pure step pieces (`grad_fn`, `apply_fn`), compiled for K seeds |
| `parallel` | the compiled step spread over devices |
| `judge` | the held-out check on fresh sequences, with 95 % intervals: the stop rule and the final table |
| `curriculum` | none, levels, and the Exp3.S bandit |
| `records` | typed records: a seed's step statistics and every row of metrics.jsonl |
| `logs` | metrics.jsonl and TensorBoard (the one writer of records), the progress bar |
| `runs` | `RunDirectory` and `SeedGroup`: the run directory's files, typed, and the one loader of a trained model |
| `seed` | `Seed`: one seed's progress, data, curriculum, checkpoints and log |
| `loop` | `train()`: the loop itself |
"""

from ntm.training.loop import SeedResult, TrainResult, train
from ntm.training.runs import build_model, default_run_dir
from ntm.training.settings import TrainSettings

__all__ = ["SeedResult", "TrainResult", "TrainSettings", "build_model", "default_run_dir", "train"]
