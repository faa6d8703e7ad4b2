"""Plug your own objective into automix: same samplers, scheduling, study storage and MLflow.

    .venv/bin/python examples/custom_objective.py

An objective is `objective(params, report) -> dict`. Call `report({...})` at each evaluation with
a `tokens` entry (the scheduler's time axis), `progress` (the share of the planned training done:
1.0 marks a trial trained to its end, and the console estimates time left from it) and the metric;
return the final metrics. Here the "training run" is a synthetic loss surface whose optimum is
known, so the result can be checked. The space is a plain dict in the space-file format.
"""

from __future__ import annotations

import math
import tempfile

import automix

OPTIMUM = {"learning_rate": 3e-3, "weight_decay": 1.0}


def objective(params: dict, report) -> dict:
    """Loss = 1 + squared log-distance from the optimum, approached over 5 'evaluations'."""
    gap = sum(math.log10(params[k] / v) ** 2 for k, v in OPTIMUM.items())
    steps = 5
    for step in range(1, steps + 1):
        report({"tokens": step * 1000, "progress": step / steps, "target_val_loss": 1.0 + gap + 0.5 / step})
    return {"target_val_loss": 1.0 + gap + 0.1}


SPACE = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "weight_decay": {"type": "float", "low": 1e-2, "high": 1e2, "log": True},
}


def main(work_dir: str | None = None, n_trials: int = 30) -> automix.SearchResult:
    """Search SPACE with the default sampler, two trials at a time; returns the SearchResult."""
    return automix.search_objective(
        objective,
        SPACE,
        study="custom",
        work_dir=work_dir or tempfile.mkdtemp(prefix="automix-custom-"),
        n_trials=n_trials,
        concurrency=2,
        scheduler="none",
        verbose=False,
    )


if __name__ == "__main__":
    result = main()
    print(f"best {result.best_value:.4f} at {result.best_params} (optimum 1.1 at {OPTIMUM})")
    print(result.trials[["number", "state", "value"]].tail())
