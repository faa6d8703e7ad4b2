"""The built-in trial function: `TrainerObjective` maps a trial's params onto a trainer config and trains.

A user's own objective has the same shape (`Objective`, automix/trial/_reporter.py) and gets the
same search, scheduling and tracking.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automix.config._space import SearchSpace
from automix.trial._record import TrialRecord, describe
from automix.trial._reporter import Reporter
from trainer.config import TrainConfig
from trainer.train import run


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
