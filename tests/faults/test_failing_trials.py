"""Trials that diverge, run out of memory or raise are FAIL with their reason; the study goes on."""

from __future__ import annotations

import math

import pytest
import ray
import torch
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

import automix
from automix.config._space import parse_space

pytestmark = pytest.mark.slow


def flaky(params, report):
    """x = 0 raises like an OOM, x = 1 diverges to NaN, x = 2 raises a user error; others are fine."""
    x = params["x"]
    report({"tokens": 10, "loss": 5.0 - x})
    if x == 0:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    if x == 1:
        return {"loss": math.nan}
    if x == 2:
        raise ValueError("user objective broke on purpose")
    return {"loss": 5.0 - x}


def test_failures_are_recorded_with_reasons_and_the_search_goes_on(tmp_path):
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        result = automix.search_objective(
            flaky,
            parse_space({"x": {"type": "int", "low": 0, "high": 5}}),
            study="flaky",
            work_dir=tmp_path / "w",
            sampler="grid",
            n_trials=6,
            metric="loss",
            scheduler="none",
            verbose=False,
        )
    finally:
        ray.shutdown()
    by_x = {t.params["x"]: t for t in result.study.trials}
    assert {x: t.state for x, t in by_x.items()} == {
        0: TrialState.FAIL,
        1: TrialState.FAIL,
        2: TrialState.FAIL,
        3: TrialState.COMPLETE,
        4: TrialState.COMPLETE,
        5: TrialState.COMPLETE,
    }
    assert "OutOfMemoryError" in by_x[0].user_attrs["fail_reason"]
    assert "non-finite" in by_x[1].user_attrs["fail_reason"]
    assert "user objective broke on purpose" in by_x[2].user_attrs["fail_reason"]
    assert result.best_value == 0.0

    client = MlflowClient(f"sqlite:///{tmp_path / 'w' / 'mlflow.db'}")
    runs = {
        int(r.data.tags["optuna.trial_number"]): r
        for r in client.search_runs([client.get_experiment_by_name("flaky").experiment_id], "tags.state != ''")
    }
    for x in (0, 1, 2):
        run = runs[by_x[x].number]
        assert run.info.status == "FAILED" and run.data.tags["state"] == "FAIL"
        assert run.data.tags["fail_reason"]
    assert all(runs[by_x[x].number].info.status == "FINISHED" for x in (3, 4, 5))
