"""Trial schedulers and search budgets, on `tokens` as the time axis.

Trials differ in T, so schedulers compare them at equal tokens trained; the trainer's
warmup-stable-decay schedule keeps a partial run a fair early estimate of a longer one, as long as
it is still in its stable phase: a report made while the lr decays (`decaying` true) shows a loss
that a longer trial only reaches at its own end, so the schedulers here leave such reports out of
their rungs and medians (they never stop a trial on one either). Nor do they stop a trial marked
`KEEP_KEY` (a point proposed again after it was pruned, see automix/engine/_searcher.py), whose reports
they also leave out. With several objectives the scheduler stops on the first metric (Ray's and
Optuna's stopping rules are single-objective); stopped trials are PRUNED and stay off the Pareto front.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable
from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule, TrialScheduler
from ray.tune.stopper import Stopper

from automix.config._study import SearchConfig
from automix.protocol import DECAYING, KEEP_KEY, TOKENS, trained_tokens, user_params


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


class CohortASHA(FIFOScheduler):
    """ASHA that ranks a trial first against its cohort: the trials on the same token stream.

    Trials of one cohort (`cohort(params)`; for the built-in trainer, the same budget and schedule:
    epochs, mix ratio, ...) see the same tokens in the same order under the same lr shape and
    differ only in what is being tuned (lr, weight decay), so their losses at equal tokens compare
    like for like. Across cohorts they do not: at 500k tokens a run mixing 50% English shows a worse
    Arabic loss than a pure-Arabic one although it ends far better (BENCHMARKS.md, "Search
    efficiency on the real task"). So at each rung a trial is ranked against the earlier trials of
    its cohort there, and only the first of its cohort to reach a rung is ranked against all trials
    (Ray's stable-phase ASHA, as `StableASHA`). Each ranking is one of Ray's ASHA schedulers; this
    class only routes the results. A stopped point proposed again continues from its checkpoint
    (automix/engine/_searcher.py), so a wrong cut costs little.
    """

    def __init__(self, cohort: Callable[[dict], Hashable], **asha: Any):
        super().__init__()
        self._cohort = cohort
        self._asha = asha
        self._all = StableASHA(**asha)
        self._cohorts: dict[Hashable, StableASHA] = {}
        self._reached: dict[Hashable, set[int]] = {}  # rungs some trial of the cohort has reached
        self._rungs = _rungs(asha["grace_period"], asha["max_t"], asha["reduction_factor"])

    def _own(self, trial) -> tuple[Hashable, StableASHA]:
        key = self._cohort(user_params(trial.config))
        if key not in self._cohorts:
            self._cohorts[key] = StableASHA(**self._asha)
            self._reached[key] = set()
        return key, self._cohorts[key]

    def on_trial_add(self, tune_controller, trial) -> None:
        self._all.on_trial_add(tune_controller, trial)
        self._own(trial)[1].on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        key, own = self._own(trial)
        overall = self._all.on_trial_result(tune_controller, trial, result)
        within = own.on_trial_result(tune_controller, trial, result)
        if StableASHA._ignored(trial, result) or TOKENS not in result:
            return TrialScheduler.CONTINUE
        new = {m for m in self._rungs if m <= result[TOKENS]} - self._reached[key]
        self._reached[key] |= new
        return overall if new else within  # first of its cohort at a rung: ranked against all

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._all.on_trial_complete(tune_controller, trial, result)
        self._own(trial)[1].on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        for scheduler in (self._all, self._own(trial)[1]):
            with contextlib.suppress(KeyError):
                scheduler.on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return f"CohortASHA: {len(self._cohorts)} cohorts"


def _rungs(grace: float, max_t: float, reduction_factor: float) -> list[float]:
    """ASHA's milestones: grace · rf^k up to max_t."""
    rungs, milestone = [], grace
    while milestone <= max_t:
        rungs.append(milestone)
        milestone *= reduction_factor
    return rungs


def grace_tokens(settings: SearchConfig, eval_every: int) -> int:
    """The first point where a scheduler may stop a trial: `grace_tokens`, else two evaluations."""
    return settings.grace_tokens or 2 * eval_every


def checkpoint_cadence(settings: SearchConfig, eval_every: int, cadence: int | None) -> int | None:
    """A trial's checkpoint cadence: at most the grace, when a scheduler may stop trials.

    ASHA's rungs are grace·rf^k (integer rf: multiples of the grace), so every rung is a checkpoint
    and a pruned point proposed again continues where it was stopped (automix/engine/_searcher.py).
    None (checkpoints off) stays off.
    """
    if settings.scheduler == "none" or cadence is None:
        return cadence
    return min(cadence, grace_tokens(settings, eval_every))


def make_scheduler(
    settings: SearchConfig, max_tokens: int, eval_every: int, cohort: Callable[[dict], Hashable] | None = None
) -> TrialScheduler:
    """ASHA (default; by cohort when `cohort(params)` is known), the median stopping rule, or none;
    grace defaults to two evaluations."""
    grace = grace_tokens(settings, eval_every)
    metric, mode = settings.metrics[0], settings.modes[0]
    if settings.scheduler == "asha":
        asha = {
            "time_attr": TOKENS,
            "metric": metric,
            "mode": mode,
            "max_t": max_tokens,
            "grace_period": min(grace, max_tokens),
            "reduction_factor": settings.reduction_factor,
        }
        return CohortASHA(cohort, **asha) if cohort is not None else StableASHA(**asha)
    if settings.scheduler == "median":
        return StableMedianStoppingRule(time_attr=TOKENS, metric=metric, mode=mode, grace_period=grace)
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
