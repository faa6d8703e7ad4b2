"""MLflow unreachable mid-search: training goes on, and the queued records are written once it is back."""

from __future__ import annotations

import json

import pytest
import ray
from mlflow.tracking import MlflowClient

import automix
from automix.config._space import parse_space

pytestmark = pytest.mark.slow
SPACE = parse_space({"x": {"type": "float", "low": -2.0, "high": 2.0}})


def objective(params, report):
    for step in range(1, 4):
        report({"tokens": 10 * step, "loss": params["x"] ** 2 + 1 / step})
    return {"loss": params["x"] ** 2 + 1 / 3}


@pytest.fixture
def outage(monkeypatch):
    """Make every MLflow batch write fail while `state['down']` is true."""
    state = {"down": False, "failed": 0}
    original = MlflowClient.log_batch

    def flaky_log_batch(self, *args, **kwargs):
        if state["down"]:
            state["failed"] += 1
            raise ConnectionError("tracking server unreachable (injected)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", flaky_log_batch)
    return state


def _search(tmp_path, name, on_result):
    class Switch(ray.tune.Callback):  # runs before automix's callbacks: flips the outage first
        def on_trial_result(self, iteration, trials, trial, result, **info):
            on_result(trial, result)

    return automix.search_objective(
        objective,
        SPACE,
        study=name,
        work_dir=tmp_path / name,
        n_trials=4,
        concurrency=2,
        sampler="random",
        metric="loss",
        scheduler="none",
        verbose=False,
        callbacks=[Switch()],
    )


def test_records_queued_during_an_outage_are_written_afterwards(tmp_path, outage):
    seen = []

    def on_result(trial, result):  # down from the 2nd result to the 6th: trials keep training
        seen.append(result)
        outage["down"] = 2 <= len(seen) <= 6

    result = _search(tmp_path, "outage", on_result)
    assert outage["failed"] > 0  # the outage really hit writes
    assert len(result.study.trials) == 4
    client = MlflowClient(f"sqlite:///{tmp_path / 'outage' / 'mlflow.db'}")
    for number, run_id in result.mlflow_run_ids.items():
        history = client.get_metric_history(run_id, "loss")
        assert [m.step for m in history] == [10, 20, 30], f"trial {number} lost records"
        assert client.get_run(run_id).info.status == "FINISHED"
    assert not (tmp_path / "outage" / "tracking_unwritten.json").exists()


def test_records_never_written_are_listed_for_the_user(tmp_path, outage):
    def on_result(trial, result):
        outage["down"] = True  # down for good after the first result

    _search(tmp_path, "down", on_result)
    unwritten = json.loads((tmp_path / "down" / "tracking_unwritten.json").read_text())
    assert unwritten and any("metrics at" in u for u in unwritten) and any("end (COMPLETE)" in u for u in unwritten)
