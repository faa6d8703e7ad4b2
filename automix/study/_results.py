"""What a search leaves behind, read back from the Optuna study (the source of truth)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from automix.config._study import SearchConfig
from automix.protocol import REJECTED, trained_tokens
from automix.study._workspace import Workspace
from trainer.atomic import write_json


@dataclass
class SearchResult:
    """Best params and value, all trials, the Pareto front, and where everything is stored."""

    study_name: str
    storage_url: str
    work_dir: Path
    best_params: dict[str, Any]
    best_value: float | list[float] | None
    trials: pd.DataFrame
    study: optuna.Study
    pareto_front: list[FrozenTrial] = field(default_factory=list)
    mlflow_parent_run_id: str | None = None
    mlflow_run_ids: dict[int, str] = field(default_factory=dict)


def trained(trial: FrozenTrial) -> bool:
    """A trial that ran (to the end or until stopped), as opposed to a rejected suggestion."""
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and REJECTED not in trial.user_attrs


def best_trials(study: optuna.Study, settings: SearchConfig) -> list[FrozenTrial]:
    """Single objective: [the best trial]. Several: the Pareto front, best first on the first metric."""
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not complete:
        return []
    sign = 1 if settings.modes[0] == "min" else -1
    if len(settings.metrics) == 1:
        return [min(complete, key=lambda t: sign * t.value)]
    return sorted(study.best_trials, key=lambda t: sign * t.values[0])


def collect(
    workspace: Workspace, settings: SearchConfig, parent_run_id: str | None = None, run_ids: dict | None = None
) -> SearchResult:
    """Load the study, write `best.json` atomically, and build the `SearchResult`."""
    study = optuna.load_study(study_name=workspace.study, storage=workspace.storage)
    front = best_trials(study, settings)
    best = front[0] if front else None
    value = None if best is None else (best.values if len(settings.metrics) > 1 else best.value)
    summary = {
        "study": workspace.study,
        "storage": workspace.storage_url,
        "metric": settings.metric,
        "mode": settings.mode,
        "best_trial": best.number if best else None,
        "best_value": value,
        "best_params": best.params if best else {},
        "best_attrs": best.user_attrs if best else {},
        "pareto_front": [{"number": t.number, "values": t.values, "params": t.params} for t in front],
        "n_trials": len(study.trials),
        "n_trained": sum(trained(t) for t in study.trials),
        "states": pd.Series([t.state.name for t in study.trials], dtype=str).value_counts().to_dict(),
        "tokens_total": sum(trained_tokens(t.user_attrs) for t in study.trials),
        "mlflow_parent_run_id": parent_run_id,
    }
    write_json(workspace.path("best.json"), summary)
    return SearchResult(
        study_name=workspace.study,
        storage_url=workspace.storage_url,
        work_dir=workspace.work_dir,
        best_params=summary["best_params"],
        best_value=value,
        trials=study.trials_dataframe(),
        study=study,
        pareto_front=front,
        mlflow_parent_run_id=parent_run_id,
        mlflow_run_ids=dict(run_ids or {}),
    )
