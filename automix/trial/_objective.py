"""Trial functions: `objective(params, report) -> dict[str, float]`.

The built-in `TrainerObjective` maps a trial's params onto a trainer config and trains; a user's
own objective has the same shape and gets the same search, scheduling and tracking. `report` is a
`Reporter`: call it with a metrics dict at each evaluation (include `tokens`, the scheduler's
time axis, and optionally `progress`, the share of the planned training done: a trial whose last
report says 1.0 counts as finished even if the scheduler stops it at that report); it also tells
the objective which trial it is running.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automix.config._space import SearchSpace
from automix.trial._record import TrialRecord, describe
from trainer.config import TrainConfig
from trainer.train import run

Objective = Callable[[dict[str, Any], "Reporter"], dict[str, float]]


class Reporter:
    """Callable handed to objectives: forwards metrics to `sink` and remembers the last ones.

    `trial_number` is the Optuna trial's; `requeued_from` the number of an earlier trial of the same
    params whose checkpoint this one may continue (a crashed one it re-runs, or a pruned one proposed
    again), or None. An objective that continues one reports `trained_tokens`, what it trained itself.
    """

    def __init__(self, trial_number: int | None, sink: Callable[[dict], Any], requeued_from: int | None = None):
        self.trial_number = trial_number
        self.requeued_from = requeued_from
        self.last: dict[str, float] = {}
        self._sink = sink

    def __call__(self, metrics: dict[str, float]) -> None:
        self.last = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        self._sink(dict(self.last))


class TrainerObjective:
    """The built-in objective: params → `TrainConfig` → `trainer.train.run` → final metrics.

    Args:
        base: The trainer config every trial starts from (`StudyConfig.base_train_config()`).
        space: The search space whose params are applied to `base`.
        trial_dir: Trial number → its folder (`Workspace.trial_dir`), for checkpoints.
        threads: torch threads per trial (default: the config's).

    Example:
        >>> objective = TrainerObjective(base, space, workspace.trial_dir, threads=1)  # doctest: +SKIP
        >>> objective.config_for({"weight_decay": 0.3}, trial_number=0).out_dir  # doctest: +SKIP
    """

    def __init__(
        self, base: TrainConfig, space: SearchSpace, trial_dir: Callable[[int], Path], threads: int | None = None
    ):
        self.base = base
        self.space = space
        self.trial_dir = trial_dir  # `Workspace.trial_dir`: trial number -> its folder
        self.threads = threads

    def config_for(
        self, params: dict[str, Any], trial_number: int | None = None, requeued_from: int | None = None
    ) -> TrainConfig:
        """The trainer config of one trial: space params applied, checkpoint dirs and threads set."""
        config = self.space.apply(params, self.base)
        updates: dict[str, Any] = {"threads": self.threads or config.threads}
        if trial_number is not None:
            updates["out_dir"] = str(self.trial_dir(trial_number))
        if requeued_from is not None:
            updates["resume_from"] = str(self.trial_dir(requeued_from))
        return config.model_copy(update=updates)

    def describe(
        self, params: dict[str, Any], trial_number: int | None = None, requeued_from: int | None = None
    ) -> TrialRecord:
        """What a trial of `params` trains, for its MLflow run (`automix.trial.describe` of its config)."""
        return describe(self.config_for(params, trial_number, requeued_from))

    def __call__(self, params: dict[str, Any], report: Reporter) -> dict[str, float]:
        config = self.config_for(params, report.trial_number, report.requeued_from)
        return run(config, report=report).metrics


def cpu_threads(cpus_per_trial: float) -> int:
    """torch threads for a trial's CPU share (at least one)."""
    return max(1, math.floor(cpus_per_trial))
