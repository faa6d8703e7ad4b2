"""A cheap start-up design for another sampler (`costgp`, `costtpe`): Sobol points from the cheapest quarter.

A model-based sampler starts with random points (Optuna's GPSampler 10, TPESampler 10), which on the
real grid cost 3–9% of the grid's tokens by themselves (automix/samplers/_cost.py). `CheapStartSampler`
hands such a sampler, through its public `independent_sampler`, the cost-aware start-up design of
`CostAwareSampler` instead.
"""

from __future__ import annotations

import optuna.distributions as od
from optuna.samplers import BaseSampler, RandomSampler

from automix.samplers._cost import CostAwareSampler


class CheapStartSampler(BaseSampler):
    """The cost-aware start-up design for another sampler's start-up phase (e.g. GPSampler's
    public `independent_sampler`): one joint cheap Sobol point per trial, handed out param by param.

    The points are `CostAwareSampler`'s start-up design: untaken Sobol points (in the seed's order)
    whose cost is at most the `cheap_quantile` of the space's costs.

    Args:
        search_space: The distributions the design covers; a param outside them is sampled at random.
        cost: `cost(params)`, a suggestion's training tokens (None: every point costs the same).
        seed: Seeds the Sobol design and the random fallback.
        cheap_quantile: The points' cost is at most this quantile of the space's costs.

    Example:
        ::

            import optuna
            from automix.samplers import CheapStartSampler

            space = {"epochs": optuna.distributions.IntDistribution(1, 32, log=True),
                     "weight_decay": optuna.distributions.FloatDistribution(0.01, 10.0, log=True)}
            startup = CheapStartSampler(space, cost=lambda p: p["epochs"], seed=0)
            # The sampler `costgp`: Optuna's GP after 5 cheap start-up points.
            sampler = optuna.samplers.GPSampler(seed=0, n_startup_trials=5, independent_sampler=startup)
    """

    def __init__(self, search_space: dict[str, od.BaseDistribution], cost, seed: int | None, cheap_quantile=0.25):
        self._design = CostAwareSampler(search_space, cost, seed, n_startup_trials=2**31, cheap_quantile=cheap_quantile)
        self._random = RandomSampler(seed=seed)
        self._points: dict[int, dict] = {}

    def infer_relative_search_space(self, study, trial) -> dict:
        """None: every param comes through `sample_independent`."""
        return {}

    def sample_relative(self, study, trial, search_space) -> dict:
        """Nothing relative (see `infer_relative_search_space`)."""
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        """This trial's cheap start-up point's value of `param_name` (random for a param outside the space)."""
        if trial.number not in self._points:
            space = self._design.infer_relative_search_space(study, trial)
            self._points[trial.number] = self._design.sample_relative(study, trial, space)
        point = self._points[trial.number]
        if param_name in point:
            return point[param_name]
        return self._random.sample_independent(study, trial, param_name, param_distribution)
