"""Trial schedulers and search budgets: early stopping that compares trials fairly.

Rungs sit on the `search.fidelity` axis: `progress` (the default, the same share of each trial's
own budget) or `tokens` (equal tokens trained). Only stable-phase reports count: a report made
while the lr decays, or by a kept trial (`KEEP_KEY`), neither sets a rung nor stops a trial.
docs/design.md ("Early stopping ...") and BENCHMARKS.md "Fair multi-fidelity search" have why.
"""

from __future__ import annotations

import contextlib

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule, TrialScheduler
from ray.tune.stopper import Stopper

from automix.config._study import SearchConfig
from automix.protocol import DECAYING, KEEP_KEY, PROGRESS, TOKENS, trained_tokens


class _StablePhaseOnly:
    """Mixin for a Ray scheduler: reports made during the lr decay, and a kept trial's reports,
    neither count nor stop a trial."""

    @staticmethod
    def _ignored(trial, result: dict) -> bool:
        return bool(result.get(DECAYING) or getattr(trial, "config", {}).get(KEEP_KEY))

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self._ignored(trial, result):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if not self._ignored(trial, result):
            super().on_trial_complete(tune_controller, trial, result)
            return
        # Drop what the scheduler keeps for a trial it does not score, through the public hook
        # Tune calls for a trial that leaves unfinished (ASHA forgets its bracket; the median rule
        # keeps nothing). ASHA raises KeyError for a trial it no longer holds: nothing to drop.
        with contextlib.suppress(KeyError):
            self.on_trial_remove(tune_controller, trial)


class StableASHA(_StablePhaseOnly, ASHAScheduler):
    """ASHA whose rungs hold stable-phase losses only."""


class StableMedianStoppingRule(_StablePhaseOnly, MedianStoppingRule):
    """The median stopping rule over stable-phase losses only."""


def grace_tokens(settings: SearchConfig, eval_every: int) -> int:
    """The first point where a scheduler on the tokens axis may stop a trial: `grace_tokens`, else two evaluations."""
    return settings.grace_tokens or 2 * eval_every


def checkpoint_cadence(settings: SearchConfig, eval_every: int, cadence: int | None) -> int | None:
    """A trial's checkpoint cadence, so that every rung is a checkpoint when a scheduler may stop trials.

    On the tokens axis ASHA's rungs are grace·rf^k (integer rf: multiples of the grace); on the
    progress axis a rung is the first evaluation at or past a share of the trial's own T, so every
    evaluation is a checkpoint. A pruned point proposed again then continues where it was stopped
    (automix/scheduling/_searcher.py). None (checkpoints off) stays off.
    """
    if settings.scheduler == "none" or cadence is None:
        return cadence
    if settings.fidelity == "progress":
        return min(cadence, eval_every)
    return min(cadence, grace_tokens(settings, eval_every))


def make_scheduler(settings: SearchConfig, max_tokens: int, eval_every: int) -> TrialScheduler:
    """ASHA (default), the median stopping rule, or none, on the `fidelity` axis.

    On `progress`, under a loss curve L(t) = L∞ + A·(c·t)^-α shared in shape, L at a share p of T is
    L∞ + p^-α·(L(T) − L∞): the order at p is the order at the end, whatever T and whatever the data
    efficiency c of a mix. ASHA stops a trial at `rungs` points at most (default one: at the first
    report past 1/9 of its budget, where only the top third go on). With several objectives it stops
    on the first metric; stopped trials are PRUNED and stay off the Pareto front.
    """
    metric, mode = settings.metrics[0], settings.modes[0]
    if settings.fidelity == "progress":
        axis, max_t, grace = PROGRESS, 1.0, settings.grace_progress
    else:
        axis, max_t = TOKENS, max_tokens
        grace = min(grace_tokens(settings, eval_every), max_tokens)
    if settings.scheduler == "asha":
        if settings.rungs is not None:  # the last rung is max_t; a trial past it runs to its end
            max_t = min(max_t, grace * settings.reduction_factor ** (settings.rungs - 1) * (1 + 1e-9))
        return StableASHA(
            time_attr=axis,
            metric=metric,
            mode=mode,
            max_t=max_t,
            grace_period=grace,
            reduction_factor=settings.reduction_factor,
            stop_last_trials=False,
        )
    if settings.scheduler == "median":
        return StableMedianStoppingRule(time_attr=axis, metric=metric, mode=mode, grace_period=grace)
    return FIFOScheduler()


class TokenBudget(Stopper):
    """Stops the whole search once the trials together have trained `max_total_tokens`."""

    def __init__(self, max_total_tokens: int | None, already_spent: float = 0.0):
        self.max_total_tokens = max_total_tokens
        self.already_spent = already_spent
        self._latest: dict[str, float] = {}

    @property
    def spent(self) -> float:
        """Tokens trained so far, this invocation's trials and earlier ones."""
        return self.already_spent + sum(self._latest.values())

    def __call__(self, trial_id: str, result: dict) -> bool:
        if TOKENS in result:  # a trial that continued a checkpoint counts only what it trained
            self._latest[trial_id] = trained_tokens(result)
        return False

    def stop_all(self) -> bool:
        return self.max_total_tokens is not None and self.spent >= self.max_total_tokens
