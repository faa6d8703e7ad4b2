"""Optuna samplers by name, all seeded: the same seed gives the same suggestions."""

from __future__ import annotations

import math
from collections.abc import Callable

import optuna
import optuna.distributions as od

from automix.config._space import SearchSpace
from automix.config._study import SAMPLERS, ConfigError


def grid_values(space: SearchSpace) -> dict[str, list]:
    """Explicit value lists for a grid: the space's `grid` lists, categorical choices, or stepped ranges."""
    grid = {}
    for name, d in space.distributions.items():
        if name in space.grid:
            grid[name] = space.grid[name]
        elif isinstance(d, od.CategoricalDistribution):
            grid[name] = list(d.choices)
        elif getattr(d, "step", None):
            n = int(round((d.high - d.low) / d.step)) + 1
            grid[name] = [d.low + i * d.step for i in range(n)]
        else:
            raise ConfigError(f"grid sampler: param '{name}' needs a 'grid' list, 'choices' or a 'step'")
    return grid


class SweepSampler(optuna.samplers.GridSampler):
    """GridSampler for ask/tell: it must not call `study.stop()` when the grid runs out.

    Optuna's GridSampler stops an `optimize` loop after the last point, but under ask/tell (how
    Ray's searcher drives Optuna) that raises inside `tell` before the trial's state is saved.
    The search's trial count ends a sweep instead.
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None


def make_sampler(
    name: str, space: SearchSpace, seed: int, cost: Callable[[dict], float] | None = None
) -> optuna.samplers.BaseSampler:
    """Build the sampler called `name` for `space`; `cost(params)` (a suggestion's training tokens)
    is what the cost-aware samplers (`costei`, `costtrend`, ...) weigh expected improvement against."""
    if name == "tpe":
        # multivariate TPE models the interaction of weight decay, epochs and mixing (they interact).
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if name == "botorch":
        from optuna_integration import BoTorchSampler

        return BoTorchSampler(seed=seed)
    if name in ("costei", "costtrend"):
        # costtrend: the model's mean falls linearly in log cost, so cheap trials extrapolate to dear
        # ones (best on the real replay grids, worst on synthetic surfaces whose optimum is inside the
        # box: BENCHMARKS.md "Cost trend").
        from automix.engine._cost_sampler import CostAwareSampler

        return CostAwareSampler(space.distributions, cost=cost, seed=seed, trend=name == "costtrend")
    if name == "costgp":
        # Optuna's GP after 5 cheap start-up points (its public `independent_sampler`), not 10 random ones.
        from automix.engine._cost_sampler import CheapStartSampler

        startup = CheapStartSampler(space.distributions, cost, seed)
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=5, independent_sampler=startup)
    if name == "costtpe":
        # TPE after 10 cheap start-up points instead of 10 uniform random ones.
        from automix.engine._cost_sampler import CheapStartSampler, StagedSampler

        tpe = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=0)
        return StagedSampler(CheapStartSampler(space.distributions, cost, seed), tpe, n=10)
    if name == "robustgp":
        # The default: Optuna's GP on losses clipped at their median, failed trials counted as bad
        # (a diverged run no longer sets the GP's scale; BENCHMARKS.md "Samplers across surfaces").
        from automix.engine._robust_sampler import RobustSampler

        return RobustSampler(optuna.samplers.GPSampler(seed=seed))
    if name == "grid":
        return SweepSampler(grid_values(space), seed=seed)
    raise ConfigError(f"unknown sampler '{name}': choose one of {', '.join(SAMPLERS)}")


def grid_size(space: SearchSpace) -> int:
    """Number of points in the full grid."""
    return math.prod(len(v) for v in grid_values(space).values())
