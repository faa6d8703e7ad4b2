"""What every objective gets: `objective(params, report) -> dict[str, float]` and its `Reporter`.

`report` is a `Reporter`: call it with a metrics dict at each evaluation (include `tokens`, the
scheduler's time axis, and optionally `progress`, the share of the planned training done: a trial
whose last report says 1.0 counts as finished even if the scheduler stops it at that report); it
also tells the objective which trial it is running. This module imports neither torch nor the
trainer, so a Ray worker running a user's own objective does not load them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
