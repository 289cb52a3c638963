"""Training: settings, the pure step, the held-out judge, curricula, logs, and the one loop.

    from ntm.training import TrainSettings, train
    result = train(TrainSettings.for_task("copy"), run_dir="runs/copy", seeds=1)

| module | what it holds |
|---|---|
| `settings` | `TrainSettings` (every choice, with its help text) and each task's defaults |
| `state` | `TrainState`: params, optimizer state and per-seed `Progress`; a seed's slice is its checkpoint |
| `step` | the optimizer and the pure step pieces (`grad_fn`, `apply_fn`), compiled for K seeds |
| `judge` | the held-out check on fresh sequences, with 95 % intervals: the stop rule and the final table |
| `curriculum` | none, levels, and the Exp3.S bandit |
| `logs` | metrics.jsonl, TensorBoard, the progress bar |
| `loop` | `train()`: the loop itself |
"""

from ntm.training.loop import SeedResult, TrainResult, build_model, default_run_dir, train
from ntm.training.settings import TrainSettings

__all__ = ["SeedResult", "TrainResult", "TrainSettings", "build_model", "default_run_dir", "train"]
