"""One sampler for the first trials, another for the rest (`costtpe`: TPE after a cheap start-up)."""

from __future__ import annotations

import optuna.distributions as od
from optuna.samplers import BaseSampler
from optuna.trial import TrialState


class StagedSampler(BaseSampler):
    """`first` suggests the study's first `n` trials, `then` the rest: a start-up design for a
    sampler that has no public hook for one (TPESampler samples its start-up uniformly at random).

    The phase is chosen once per trial, from the trials already finished or running, so the
    relative and independent halves of one suggestion come from the same sampler.

    Args:
        first: The sampler of the first `n` trials (e.g. `CheapStartSampler`).
        then: The sampler of every later trial; it sees the first `n` trials as its history.
        n: How many trials (COMPLETE, PRUNED or RUNNING) `first` suggests.

    Example:
        ::

            import optuna
            from automix.samplers import CheapStartSampler, StagedSampler

            space = {"epochs": optuna.distributions.IntDistribution(1, 32, log=True)}
            tpe = optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True, n_startup_trials=0)
            # The sampler `costtpe`: TPE after 10 cheap start-up points.
            sampler = StagedSampler(CheapStartSampler(space, cost=lambda p: p["epochs"], seed=0), tpe, n=10)
    """

    def __init__(self, first: BaseSampler, then: BaseSampler, n: int):
        self._first, self._then, self._n = first, then, n
        self._phase: dict[int, BaseSampler] = {}

    def _sampler(self, study, trial) -> BaseSampler:
        if trial.number not in self._phase:
            states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
            others = len(study.get_trials(deepcopy=False, states=states)) - 1  # this trial is RUNNING
            self._phase[trial.number] = self._first if others < self._n else self._then
        return self._phase[trial.number]

    def reseed_rng(self) -> None:
        """Reseed both samplers."""
        self._first.reseed_rng()
        self._then.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict[str, od.BaseDistribution]:
        """The phase's sampler's relative search space."""
        return self._sampler(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space) -> dict:
        """The phase's sampler's relative sample."""
        return self._sampler(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        """The phase's sampler's independent sample."""
        return self._sampler(study, trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        """Both samplers see every trial start."""
        self._first.before_trial(study, trial)
        self._then.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        """Both samplers see every trial end; the phase of a finished trial is forgotten."""
        self._first.after_trial(study, trial, state, values)
        self._then.after_trial(study, trial, state, values)
        self._phase.pop(trial.number, None)
