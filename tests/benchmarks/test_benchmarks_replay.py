"""The search benchmark's in-process driver (benchmarks/search_efficiency.py) makes the calls Ray
Tune's controller makes: the same trials, states and tokens as a real `automix.search_objective`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import ray

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import search_efficiency as se  # noqa: E402
from _grids import load  # noqa: E402

pytestmark = pytest.mark.slow


def _trials(trials):
    return [
        (
            t.number,
            t.state.name,
            dict(t.params),
            t.user_attrs.get("trained_tokens"),
            t.value,
            "rejected" in t.user_attrs,
        )
        for t in trials
    ]


@pytest.mark.parametrize("label", ["random + asha (tokens, every rung)", "random + asha (progress, 1 rung)"])
def test_the_in_process_driver_replays_exactly_what_ray_runs(tmp_path, label):
    grid = load("real_grid_u25k")
    method = next(m for m in se.METHODS if m.label == label)
    alone = se.run_in_process(method, grid, seed=3, trials=12, work=tmp_path / "alone")
    assert any(t.state.name == "PRUNED" for t in alone)  # the scheduler stopped some: the order matters
    # The replay's grid is an object of the benchmarks' modules: Ray's workers import them from there.
    path = {"PYTHONPATH": f"{BENCHMARKS}:{BENCHMARKS.parent}"}
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", runtime_env={"env_vars": path}
    )
    try:
        with_ray = se.run_with_ray(method, grid, seed=3, trials=12, work=tmp_path / "ray")
    finally:
        ray.shutdown()
    assert _trials(with_ray) == _trials(alone)
