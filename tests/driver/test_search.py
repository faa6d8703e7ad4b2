"""End to end: a tiny real search lands in the Optuna study, MLflow (parent + children) and best.json."""

from __future__ import annotations

import json

import optuna
import pytest
from mlflow.tracking import MlflowClient

from automix.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_study(real_study):
    params = {
        "weight_decay": {"type": "float", "low": 0.01, "high": 3.0, "log": True},
        "learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
        "epochs": {"type": "int", "low": 1, "high": 4},
        "mix_ratio": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25},
    }
    return real_study("e2e", params, search={"scheduler": "asha"})


def test_search_lands_in_optuna_mlflow_and_best_json(tiny_study):
    path, work = tiny_study
    assert main(["search", str(path)]) == 0

    study = optuna.load_study(study_name="e2e", storage=f"sqlite:///{work / 'optuna.db'}")
    assert len(study.trials) == 3
    states = {t.state for t in study.trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for t in study.trials:
        assert t.intermediate_values, "intermediate values at step = tokens"
        assert max(t.intermediate_values) == t.user_attrs["tokens"]

    best = json.loads((work / "best.json").read_text())
    assert best["best_value"] == min(t.value for t in completed)
    assert best["best_params"] == min(completed, key=lambda t: t.value).params

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    exp = client.get_experiment_by_name("e2e")
    runs = client.search_runs([exp.experiment_id])
    # Trials are runs of their own (a row each in MLflow's UI) that name their search's run.
    parents = [r for r in runs if r.data.tags.get("automix.role") == "search"]
    children = [r for r in runs if r.data.tags.get("automix.search_run_id") == parents[0].info.run_id]
    assert not any("mlflow.parentRunId" in r.data.tags for r in runs)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(exp.tags["mlflow.sharedViewState.automix-trials"])
    assert "params.`weight_decay`" in view["selectedColumns"] and "metrics.`target_val_loss`" in view["selectedColumns"]
    assert len(parents) == 1 and len(children) == 3
    # A pruned trial's run is KILLED: the UI shows it apart from a finished one.
    assert parents[0].info.status == "FINISHED"
    assert all(r.info.status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}[r.data.tags["state"]] for r in children)
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    for t in study.trials:
        run = by_number[t.number]
        assert run.data.tags["state"] == t.state.name
        assert float(run.data.params["weight_decay"]) == pytest.approx(t.params["weight_decay"])
        history = client.get_metric_history(run.info.run_id, "target_val_loss")
        assert [m.step for m in history] == sorted(t.intermediate_values)  # step = tokens
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"best.json", "config.json"} <= artifacts
    # The best trial's model is in the Model Registry, aliased `best`, where MLflow users deploy from.
    version = client.get_model_version_by_alias("automix-e2e", "best")
    assert version.run_id == parents[0].data.tags["best_run_id"] == by_number[best["best_trial"]].info.run_id
    assert parents[0].data.tags["best_model"] == f"automix-e2e/{version.version}"


def test_existing_study_needs_resume(tiny_study, capsys):
    path, _ = tiny_study
    assert main(["search", str(path), "search.n_trials=1", "search.scheduler=none"]) == 0
    capsys.readouterr()
    assert main(["search", str(path), "search.n_trials=1"]) == 2
    assert "--resume" in capsys.readouterr().err
