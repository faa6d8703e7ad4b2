"""The Ray Tune side of a trial: an objective wrapped as a function trainable, and the keys it shares.

A Ray worker imports this module and what the objective needs (for `TrainerObjective` the space,
config and trainer; for a user's own objective nothing of automix's beyond `Reporter`), so it stays
free of MLflow, the samplers and the driver's side (BENCHMARKS.md "Orchestration
overhead" has what that saves per worker).
"""

from __future__ import annotations

import sys
from typing import Any

import ray
from ray import tune

from automix.protocol import FINAL_KEY, REQUEUED_KEY, TRIAL_KEY, user_params
from automix.trial._reporter import Objective, Reporter


def _ship_by_value(objective: Objective) -> None:
    """Let Ray workers unpickle a user's objective whose module they cannot import.

    cloudpickle pickles functions by reference to their module; a module from a user's script
    folder or a test directory is not on the workers' path, so send its code along instead.
    """
    module = sys.modules.get(getattr(objective, "__module__", "") or "")
    path = getattr(module, "__file__", None) or ""
    if module is None or module.__name__ == "__main__" or "-packages" in path or module.__name__.startswith("automix"):
        return
    ray.cloudpickle.register_pickle_by_value(module)


def make_trainable(objective: Objective):
    """Wrap `objective(params, report)` as a Ray Tune function trainable."""
    _ship_by_value(objective)

    def trainable(config: dict[str, Any]) -> None:
        params = user_params(config)
        # Which Ray node runs the trial (Ray adds node_ip, which loopback or NAT nodes can share).
        node = {"node_id": ray.get_runtime_context().get_node_id()}

        def sink(metrics: dict) -> None:
            tune.report({**metrics, **node})

        reporter = Reporter(config.get(TRIAL_KEY), sink=sink, requeued_from=config.get(REQUEUED_KEY))
        final = objective(params, reporter)
        # The final result carries FINAL_KEY: how the searcher tells "finished" from "stopped".
        sink({**reporter.last, **final, FINAL_KEY: 1.0})

    return trainable
