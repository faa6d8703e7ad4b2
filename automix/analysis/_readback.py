"""A finished study read back for analysis: Optuna trials joined with their final metrics from MLflow.

The Optuna study holds params, states and the searched value; everything else a trial measured
(target_acc, aux_val_loss, per-task accuracies) lives in its MLflow child run, which carries the
trial's number in the `optuna.trial_number` tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from automix.config._study import StudyConfig
from automix.errors import ConfigError
from automix.protocol import REJECTED
from automix.study._results import best_trials
from automix.study._workspace import Workspace
from automix.tracking._store import Tracker, is_trial


@dataclass
class StudyData:
    """One study's trials (a row per trial: number, state, value, params, final metrics) and its stores."""

    config: StudyConfig
    workspace: Workspace
    study: optuna.Study
    trials: pd.DataFrame
    param_names: list[str]
    tracker: Tracker

    @property
    def work_dir(self) -> Path:
        return self.workspace.work_dir

    @property
    def metric(self) -> str:
        """The primary searched metric (the first one of a multi-objective study)."""
        return self.config.search.metrics[0]

    @property
    def completed(self) -> pd.DataFrame:
        """Trials that ran to the end (pruned trials' metrics are partial, so analyses skip them)."""
        return self.trials[self.trials["state"] == TrialState.COMPLETE.name]

    def best(self) -> FrozenTrial | None:
        """The best completed trial on the primary metric."""
        front = best_trials(self.study, self.config.search)
        return front[0] if front else None

    def best_row(self) -> pd.Series | None:
        """The best trial's row of `trials`."""
        best = self.best()
        return None if best is None else self.trials.set_index("number").loc[best.number]

    def parent_run_id(self) -> str | None:
        """The MLflow parent run of the latest search invocation (where report artifacts go)."""
        runs = self.tracker.client.search_runs([self.tracker.experiment_id], order_by=["attributes.start_time DESC"])
        parents = [r for r in runs if not is_trial(r.data.tags)]
        return parents[0].info.run_id if parents else None


def final_metrics(tracker: Tracker) -> dict[int, dict[str, float]]:
    """Per Optuna trial number, the last value of every metric of its latest finished MLflow run."""
    # COMPLETE and PRUNED trials (run status FINISHED and KILLED), not failed or running ones.
    runs = tracker.client.search_runs(
        [tracker.experiment_id], "tags.`state` != 'FAIL'", order_by=["attributes.start_time ASC"]
    )
    by_number: dict[int, dict[str, float]] = {}
    for run in runs:  # a resumed trial's later run replaces the earlier one
        number = run.data.tags.get("optuna.trial_number")
        if number is not None:
            by_number[int(number)] = dict(run.data.metrics)
    return by_number


def load_study_data(config: StudyConfig) -> StudyData:
    """Read the study a config names (from its storage, wherever that is) and its MLflow metrics.

    A ConfigError in one line if there is no such study; nothing is created.
    """
    workspace = Workspace.from_config(config)
    study = workspace.load_study()
    tracker = workspace.tracker()
    metrics = final_metrics(tracker)
    rows, names = [], []
    for t in study.trials:
        names += [p for p in t.params if p not in names]
        value = t.values[0] if t.values else None
        # A rejected suggestion (never trained) is a FAIL in Optuna, kept out of every sampler's
        # observations; here it is named for what it is.
        state = "REJECTED" if REJECTED in t.user_attrs else t.state.name
        rows.append({**metrics.get(t.number, {}), **t.params, "number": t.number, "state": state, "value": value})
    if not rows:
        raise ConfigError(f"study '{config.study}' has no trials yet: run `automix search` first")
    return StudyData(config, workspace, study, pd.DataFrame(rows), names, tracker)
