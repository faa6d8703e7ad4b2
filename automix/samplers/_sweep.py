"""The grid sampler (`search.sampler: grid`): a full, seeded sweep over a space's value lists."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import optuna
import optuna.distributions as od

from automix.errors import ConfigError

if TYPE_CHECKING:  # the config layer imports the samplers' registry to check a name
    from automix.config._space import SearchSpace


def grid_values(space: SearchSpace) -> dict[str, list]:
    """Explicit value lists for a grid: the space's `grid` lists, categorical choices, or stepped ranges.

    Args:
        space: The search space. A param needs a `grid` list in the space file, categorical
            `choices`, or a `step` (an int range's step is 1).

    Returns:
        Each param's values, in the order they are listed or rise.

    Raises:
        ConfigError: A param is a continuous range without a `grid` list.

    Example:
        ::

            from automix.config import parse_space
            from automix.samplers import grid_values

            space = parse_space({"epochs": {"type": "int", "low": 1, "high": 3},
                                 "mix_ratio": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25}})
            grid_values(space)  # {'epochs': [1, 2, 3], 'mix_ratio': [0.0, 0.25, 0.5]}
    """
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


def grid_size(space: SearchSpace) -> int:
    """Number of points in the full grid.

    Args:
        space: The search space (see `grid_values`).

    Returns:
        The product of the params' value counts.

    Example:
        ::

            from automix.config import parse_space
            from automix.samplers import grid_size

            grid_size(parse_space({"epochs": {"type": "int", "low": 1, "high": 3}}))  # 3
    """
    return math.prod(len(v) for v in grid_values(space).values())


class SweepSampler(optuna.samplers.GridSampler):
    """GridSampler for ask/tell: it must not call `study.stop()` when the grid runs out.

    Optuna's GridSampler stops an `optimize` loop after the last point, but under ask/tell (how
    Ray's searcher drives Optuna) that raises inside `tell` before the trial's state is saved.
    The search's trial count ends a sweep instead.

    Args:
        search_space: Each param's values (`grid_values`), as for Optuna's `GridSampler`.
        seed: Seeds the order in which the points are visited; trial number k gets the k-th
            point of the seeded shuffle (so a resumed sweep keeps its seed:
            automix/driver/_search.py `sampler_seed`).

    Example:
        ::

            import optuna
            from automix.samplers import SweepSampler

            sampler = SweepSampler({"x": [0, 1, 2], "y": ["a", "b"]}, seed=0)
            study = optuna.create_study(sampler=sampler)
            for _ in range(6):
                trial = study.ask()
                study.tell(trial, trial.suggest_int("x", 0, 2) + (trial.suggest_categorical("y", ["a", "b"]) == "b"))
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None
