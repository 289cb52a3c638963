"""The run directory as one typed object, and a group of seeds: the only reader and writer of their files.

  RunDirectory(path)  one seed: `config` (config.json as a typed `RunConfig`), `write_config`,
                      `records()` (metrics.jsonl as typed records, `ntm.training.records`), `open_log()`,
                      `checkpoints()`, `lock()`, `load()`, the one loader of the trained model, and
                      `snapshot`/`continue_from`: one run carried on in another (population-based training)
  SeedGroup           the seeds of one run: for one seed the run directory itself; for K > 1 seeds
                      `RUN/seeds.json` and one `RUN/seed-S/` run directory per seed
The files' formats (atomic JSON, Orbax checkpoints, the one-writer lock, metrics lines) are `ntm.rundir`'s.
"""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from ntm import models, tasks
from ntm.rundir import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    GROUP_FILE,
    METRICS_FILE,
    Checkpoints,
    RunDirectoryError,
    RunLock,
    newest_params,
    read_json,
    read_metrics,
    read_run_config,
    truncate_metrics,
    write_json_atomically,
)
from ntm.training.logs import MetricsLog
from ntm.training.records import Forked, Record, parse_records
from ntm.training.settings import BUDGET_FIELDS, TrainSettings


def default_run_dir(task_name: str) -> Path:
    return Path("runs") / f"{task_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def model_config(settings: TrainSettings, task):
    """The config of the model named in the settings, sized for the task."""
    values = {"input_size": task.input_size, "output_size": task.output_size, **settings.model_options}
    return models.build_config(settings.model, values)


def build_model(settings: TrainSettings, task, seed: int | None = None):
    """The model named in the settings, sized for the task; returns (model, model_config)."""
    config = model_config(settings, task)
    model = models.get(settings.model).model_class(config, rngs=nnx.Rngs(settings.seed if seed is None else seed))
    return model, config


def model_identity(settings: TrainSettings, config) -> dict[str, Any]:
    """What a checkpoint must have been saved for: the model's name and config, flattened."""
    return {"model": settings.model, **{f"config.{k}": v for k, v in config.to_dict().items()}}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """config.json: the seed's settings, the model's registry name and config, its parameter count."""

    settings: TrainSettings
    model: str
    task: str
    model_config: dict[str, Any]
    parameters: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "model": self.model, "task": self.task,
                "model_config": self.model_config, "parameters": self.parameters}


@dataclasses.dataclass
class LoadedRun:
    run_dir: Path
    settings: TrainSettings
    task: Any
    model: nnx.Module
    step: int


class RunDirectory:
    """One seed's run directory (layout in `ntm.rundir`). Reading it checks it; a bad one is a RunDirectoryError."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._config: RunConfig | None = None

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    @property
    def exists(self) -> bool:
        return (self.path / CONFIG_FILE).is_file()

    @property
    def config(self) -> RunConfig:
        if self._config is None:
            saved = read_run_config(self.path)
            try:
                settings = TrainSettings.from_dict(saved["settings"])
            except (TypeError, KeyError, ValueError) as error:
                raise RunDirectoryError(f"{self.path / CONFIG_FILE} is corrupt: {error}") from None
            self._config = RunConfig(settings, saved["model"], saved.get("task", settings.task),
                                     saved["model_config"], saved.get("parameters"))
        return self._config

    @property
    def settings(self) -> TrainSettings:
        return self.config.settings

    def write_config(self, config: RunConfig) -> None:
        write_json_atomically(self.path / CONFIG_FILE, config.to_json())
        self._config = config

    def records(self) -> list[Record]:
        """metrics.jsonl as typed records, in order (a torn last line is ignored)."""
        return parse_records(read_metrics(self.path))

    def truncate_records(self, last_step: int) -> None:
        """Drop what was logged after `last_step`: work lost with an unsaved tail."""
        truncate_metrics(self.path, last_step)

    def open_log(self) -> MetricsLog:
        return MetricsLog(self.path)

    def checkpoints(self, keep: int = 3, identity: dict[str, Any] | None = None) -> Checkpoints:
        return Checkpoints(self.path, keep=keep, identity=identity)

    def snapshot(self, into: Path) -> int:
        """Copy what continuing this run needs into the folder `into`: config.json, metrics.jsonl and the
        newest checkpoint (what a sweep trial hands Ray Tune for population-based training). Its step."""
        saved = Checkpoints(self.path, create=False)
        try:
            steps = saved.steps()
        finally:
            saved.close()
        if not steps:
            raise RunDirectoryError(f"{self.path} has no checkpoint to copy")
        into = Path(into)
        into.mkdir(parents=True, exist_ok=True)
        for name in (CONFIG_FILE, METRICS_FILE):
            shutil.copy2(self.path / name, into / name)
        shutil.copytree(saved.directory / str(steps[-1]), into / CHECKPOINT_DIR / str(steps[-1]))
        return steps[-1]

    def continue_from(self, snapshot: Path, settings: TrainSettings, source: str) -> int:
        """Make this directory the run that `snapshot` holds (a `snapshot` of another run) continued with
        `settings`, which may differ in training settings only (population-based training's exploit, then
        explore). The learning rate lives in the optimizer state, so the checkpoint is saved again with
        `settings.lr`; a `Forked` record names the source and what changed. Returns the step it goes on from.
        RunDirectoryError if `settings` would train another model or task."""
        from ntm.training.step import make_optimizer

        source_config = RunDirectory(snapshot).config
        task = tasks.get(settings.task, **settings.task_options)
        model, config = build_model(settings, task)
        if (settings.model, settings.task, settings.task_options) != (source_config.model, source_config.task,
                                                                      source_config.settings.task_options) or \
                config.to_dict() != source_config.model_config:
            raise RunDirectoryError(f"{self.path} can continue {source} only with the same model and task")
        if self.path.exists():
            shutil.rmtree(self.path)
        shutil.copytree(snapshot, self.path)
        self.write_config(dataclasses.replace(source_config, settings=settings))
        params = nnx.state(model, nnx.Param)
        checkpoints = self.checkpoints(keep=settings.keep, identity=model_identity(settings, config))
        try:
            step, params, opt_state, progress = checkpoints.restore(nnx.to_pure_dict(params),
                                                                   make_optimizer(settings).init(params))
            hyperparams = {**opt_state.hyperparams,
                           "learning_rate": np.asarray(settings.lr, np.asarray(opt_state.hyperparams["learning_rate"]).dtype)}
            checkpoints.save(step, params, opt_state._replace(hyperparams=hyperparams), {**progress, "lr": settings.lr})
        finally:
            checkpoints.close()
        before, after = source_config.settings.to_dict(), settings.to_dict()
        changed = {name: [before.get(name), value] for name, value in after.items() if before.get(name) != value}
        self.truncate_records(step)
        log = self.open_log()
        try:
            log.write(Forked(step, source=source, changed=changed))
        finally:
            log.close()
        return step

    def lock(self) -> RunLock:
        """Create the directory and take its one-writer lock."""
        self.path.mkdir(parents=True, exist_ok=True)
        return RunLock(self.path)

    def load_model(self, controller: nnx.Module | None = None, seed: int = 0) -> tuple[int, nnx.Module]:
        """(step, model): the model of config.json with the parameters of the newest readable checkpoint.

        `controller` is for a model saved with a user's controller; `seed` seeds the model's own random
        stream (a random-memory NTM's), which a caller that passes its own keys never uses.
        """
        config = self.config
        model = models.build_saved(config.model, config.model_config, controller, self.path / CONFIG_FILE, seed)
        step, params = newest_params(self.path, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
        models.put_params(model, params)
        return step, model

    def load(self) -> LoadedRun:
        """The task and the trained model; ValueError if the directory is missing, corrupt or inconsistent."""
        settings = self.settings
        try:
            task = tasks.get(settings.task, **settings.task_options)
        except TypeError as error:
            raise RunDirectoryError(f"{self.path / CONFIG_FILE} is corrupt: {error}") from None
        if self.config.model_config != model_config(settings, task).to_dict():
            raise RunDirectoryError(f"the model config in {self.path / CONFIG_FILE} does not match its settings")
        step, model = self.load_model(seed=settings.seed)
        return LoadedRun(self.path, settings, task, model, step)


def load_run(run_dir: Path | str) -> LoadedRun:
    """The task and the trained model of a run directory; ValueError if it is missing or corrupt."""
    return RunDirectory(run_dir).load()


@dataclasses.dataclass
class SeedGroup:
    """The seeds of one run and where each lives: `path` itself for one seed, `path/seed-S` for K > 1."""

    path: Path
    directories: list[RunDirectory]
    settings: list[TrainSettings]  # each seed's

    @staticmethod
    def is_group(path: Path | str) -> bool:
        return (Path(path) / GROUP_FILE).is_file()

    @staticmethod
    def holds_run(path: Path | str) -> bool:
        return (Path(path) / CONFIG_FILE).exists() or (Path(path) / GROUP_FILE).exists()

    @staticmethod
    def layout(path: Path, seeds: list[int]) -> list[RunDirectory]:
        """Where each seed lives: one seed in the run directory itself, K > 1 in `seed-S` beside seeds.json."""
        return [RunDirectory(path)] if len(seeds) == 1 else [RunDirectory(path / f"seed-{s}") for s in seeds]

    @classmethod
    def new(cls, settings: TrainSettings, path: Path | str | None, seeds: int) -> "SeedGroup":
        """`seeds` seeds (settings.seed, +1, ...) for a new run in `path` (default runs/TASK-TIMESTAMP)."""
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
        path = Path(path) if path is not None else default_run_dir(tasks.task_class(settings.task).name)
        if cls.holds_run(path):
            raise RunDirectoryError(f"{path} already holds a run; resume it or choose another run directory")
        seed_settings = [dataclasses.replace(settings, seed=settings.seed + k) for k in range(seeds)]
        return cls(path, cls.layout(path, [s.seed for s in seed_settings]), seed_settings)

    @classmethod
    def open(cls, path: Path | str, budget: dict[str, Any] | None = None) -> "SeedGroup":
        """The saved run (or group) in `path`, its settings with a new `budget` (budget fields only)."""
        path = Path(path)
        if cls.is_group(path):
            index = read_json(path / GROUP_FILE)
            seeds = index.get("seeds") if isinstance(index, dict) else None
            if not isinstance(seeds, list) or len(seeds) < 2:
                raise RunDirectoryError(f"{path / GROUP_FILE} is corrupt: it lists no seeds")
            directories = cls.layout(path, seeds)
        else:
            directories = [RunDirectory(path)]
        budget = {key: value for key, value in (budget or {}).items() if key in BUDGET_FIELDS}
        return cls(path, directories, [dataclasses.replace(d.settings, **budget) for d in directories])

    def __len__(self) -> int:
        return len(self.directories)

    def lock(self) -> list[RunLock]:
        """Every directory of the group created and locked (the group's own first)."""
        locks = []
        try:
            for directory in dict.fromkeys([self.path, *(d.path for d in self.directories)]):
                locks.append(RunDirectory(directory).lock())
        except BaseException:
            for lock in locks:
                lock.release()
            raise
        return locks

    def write_configs(self, configs: list[RunConfig]) -> None:
        """Each seed's config.json, and seeds.json for K > 1."""
        for directory, config in zip(self.directories, configs):
            directory.write_config(config)
        self.write_index()

    def write_index(self, results: list[dict[str, Any]] | None = None) -> None:
        """seeds.json of a group (K > 1): the task, model and seeds, and each seed's outcome once trained."""
        if len(self) == 1:
            return
        first = self.settings[0]
        index = {"task": first.task, "model": first.model, "seeds": [s.seed for s in self.settings]}
        write_json_atomically(self.path / GROUP_FILE, {**index, **({"results": results} if results else {})})
