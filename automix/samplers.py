"""Optuna samplers by name, all seeded: the same seed gives the same suggestions."""

from __future__ import annotations

import copy
import math
from typing import Any

import optuna
import optuna.distributions as od
from optuna.trial import FrozenTrial, TrialState

from automix.config import ConfigError
from automix.space import SearchSpace


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


class _PrunedAsObserved:
    """A study seen with its pruned trials as finished ones, valued at their last intermediate value."""

    def __init__(self, study: optuna.Study):
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False) -> list[FrozenTrial]:
        wanted = None if states is None else (*states, TrialState.PRUNED)
        trials = self._study._get_trials(deepcopy=deepcopy, states=wanted, use_cache=use_cache)
        return [_observed(t) if t.state == TrialState.PRUNED else t for t in trials if _usable(t)]


def _usable(trial: FrozenTrial) -> bool:
    return trial.state != TrialState.PRUNED or trial.value is not None  # a rejected suggestion has no value


def _observed(trial: FrozenTrial) -> FrozenTrial:
    seen = copy.copy(trial)
    seen.state = TrialState.COMPLETE
    return seen


class PrunedAwareGPSampler(optuna.samplers.GPSampler):
    """Optuna's GP sampler that also learns from trials a scheduler stopped.

    The stock GP models COMPLETE trials only, so a region ASHA stopped early stays unknown and is
    proposed again (measured on the real task: one stopped point re-proposed 16 times). Here a
    pruned trial counts with its last intermediate value (Optuna's value for a pruned trial): a
    partial run's loss, above what it would have finished at, so the model learns the region is at
    least that bad, which is what the scheduler concluded. Single-objective studies only.
    """

    def infer_relative_search_space(self, study, trial):
        return super().infer_relative_search_space(_observed_study(study), trial)

    def sample_relative(self, study, trial, search_space):
        return super().sample_relative(_observed_study(study), trial, search_space)


def _observed_study(study: optuna.Study):
    return _PrunedAsObserved(study) if len(study.directions) == 1 else study


def make_sampler(name: str, space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    """Build the sampler called `name` for `space`."""
    if name == "tpe":
        # multivariate TPE models the interaction of weight decay, epochs and mixing (they interact).
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)
    if name == "gp":
        return PrunedAwareGPSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if name == "botorch":
        from optuna_integration import BoTorchSampler

        return BoTorchSampler(seed=seed)
    if name == "grid":
        return SweepSampler(grid_values(space), seed=seed)
    raise ConfigError(f"unknown sampler '{name}': choose one of tpe, gp, botorch, random, qmc, grid, cmaes")


def grid_size(space: SearchSpace) -> int:
    """Number of points in the full grid."""
    return math.prod(len(v) for v in grid_values(space).values())
