"""The samplers by name: ONE mapping from a name to its factory, which `search.sampler` is checked against.

Each factory is `(space, seed, cost) -> BaseSampler`, seeded by `seed` alone: the same seed gives
the same suggestions (benchmarks/samplers.py relies on it). `cost(params)` is a suggestion's
training tokens; the cost-aware samplers weigh against it, the others ignore it. The config layer
checks `search.sampler` here when a config is validated, not at import (this package imports the
config layer), so a name added with `register_sampler` is accepted by configs validated after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna
from optuna.samplers import BaseSampler

from automix.errors import ConfigError
from automix.samplers._cheap_start import CheapStartSampler
from automix.samplers._cost import CostAwareSampler
from automix.samplers._robust import RobustSampler
from automix.samplers._staged import StagedSampler
from automix.samplers._sweep import SweepSampler, grid_values

if TYPE_CHECKING:
    from automix.config._space import SearchSpace

Cost = Callable[[dict], float] | None
SamplerFactory = Callable[["SearchSpace", int, Cost], BaseSampler]


def _tpe(space: SearchSpace, seed: int, cost: Cost) -> BaseSampler:
    # The default, with early stopping on the progress axis: the lowest geometric mean of tokens
    # against the best stock Optuna configuration over every surface (BENCHMARKS.md "Fair
    # multi-fidelity search"). Multivariate TPE models the interaction of weight decay, epochs and
    # mixing; it ranks pruned trials below finished ones, so early stopping informs it.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def _gp(space: SearchSpace, seed: int, cost: Cost) -> BaseSampler:
    return optuna.samplers.GPSampler(seed=seed)


def _robustgp(space: SearchSpace, seed: int, cost: Cost) -> BaseSampler:
    # Optuna's GP on losses clipped at their median, failed trials counted as bad (a diverged run
    # no longer sets the GP's scale; BENCHMARKS.md "Samplers across surfaces"). The default until 2026-12.
    return RobustSampler(optuna.samplers.GPSampler(seed=seed))


def _costtpe(space: SearchSpace, seed: int, cost: Cost) -> BaseSampler:
    # TPE after 10 cheap start-up points instead of 10 uniform random ones.
    tpe = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=0)
    return StagedSampler(CheapStartSampler(space.distributions, cost, seed), tpe, n=10)


def _costgp(space: SearchSpace, seed: int, cost: Cost) -> BaseSampler:
    # Optuna's GP after 5 cheap start-up points (its public `independent_sampler`), not 10 random ones.
    startup = CheapStartSampler(space.distributions, cost, seed)
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=5, independent_sampler=startup)


def _costei(space: SearchSpace, seed: int, cost: Cost) -> BaseSampler:
    return CostAwareSampler(space.distributions, cost=cost, seed=seed, trend=False)


def _costtrend(space: SearchSpace, seed: int, cost: Cost) -> BaseSampler:
    # The model's mean falls linearly in log cost, so cheap trials extrapolate to dear ones (best on
    # the real replay grids, worst on synthetic surfaces whose optimum is inside the box:
    # BENCHMARKS.md "Cost trend").
    return CostAwareSampler(space.distributions, cost=cost, seed=seed, trend=True)


def _botorch(space: SearchSpace, seed: int, cost: Cost) -> BaseSampler:
    from optuna_integration import BoTorchSampler  # imports torch: only when it is asked for

    return BoTorchSampler(seed=seed)


def _random(space: SearchSpace, seed: int, cost: Cost) -> BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def _qmc(space: SearchSpace, seed: int, cost: Cost) -> BaseSampler:
    return optuna.samplers.QMCSampler(seed=seed, scramble=True)


def _grid(space: SearchSpace, seed: int, cost: Cost) -> BaseSampler:
    return SweepSampler(grid_values(space), seed=seed)


def _cmaes(space: SearchSpace, seed: int, cost: Cost) -> BaseSampler:
    return optuna.samplers.CmaEsSampler(seed=seed)


# The order is the one an unknown name's error lists them in.
SAMPLERS: dict[str, SamplerFactory] = {
    "tpe": _tpe,
    "gp": _gp,
    "robustgp": _robustgp,
    "costtpe": _costtpe,
    "costgp": _costgp,
    "costei": _costei,
    "costtrend": _costtrend,
    "botorch": _botorch,
    "random": _random,
    "qmc": _qmc,
    "grid": _grid,
    "cmaes": _cmaes,
}


def sampler_names() -> tuple[str, ...]:
    """The names `search.sampler` accepts: the built-in samplers, then those registered since.

    Returns:
        The registered names, in registration order.

    Example:
        ::

            from automix.samplers import sampler_names

            "tpe" in sampler_names()  # True: the default
    """
    return tuple(SAMPLERS)


def register_sampler(name: str, factory: SamplerFactory) -> None:
    """Make `factory` the sampler called `name`, for `make_sampler` and for `search.sampler`.

    Args:
        name: The new name; a name already registered is refused (a built-in keeps its meaning).
        factory: `factory(space, seed, cost) -> optuna.samplers.BaseSampler`. `space` is the
            `SearchSpace`, `seed` the search's sampler seed (automix/driver/_search.py
            `sampler_seed`), `cost` a suggestion's training tokens `cost(params)` or None. Seed
            every random draw from `seed`, so that a search can be repeated.

    Raises:
        ValueError: `name` is already registered.

    Example:
        ::

            import optuna
            from automix.samplers import register_sampler

            register_sampler("tpe_indep", lambda space, seed, cost: optuna.samplers.TPESampler(seed=seed))
            # now `search.sampler: tpe_indep` in a config, or automix.search(config, sampler="tpe_indep")
    """
    if name in SAMPLERS:
        raise ValueError(f"sampler '{name}' is already registered")
    SAMPLERS[name] = factory


def make_sampler(name: str, space: SearchSpace, seed: int, cost: Callable[[dict], float] | None = None) -> BaseSampler:
    """Build the sampler called `name` for `space`, seeded by `seed`.

    Args:
        name: A registered name (`sampler_names()`).
        space: The search space (a grid needs its value lists: `grid_values`).
        seed: The sampler's seed: the same seed gives the same suggestions.
        cost: `cost(params)`, a suggestion's training tokens, which the cost-aware samplers
            (`costei`, `costtrend`, ...) weigh expected improvement against; None: every point costs
            the same.

    Returns:
        A new `optuna.samplers.BaseSampler`.

    Raises:
        ConfigError: `name` is not registered (one line listing the names).

    Example:
        ::

            import optuna
            from automix.config import parse_space
            from automix.samplers import make_sampler

            space = parse_space({"x": {"type": "float", "low": -4, "high": 4}})
            study = optuna.create_study(sampler=make_sampler("robustgp", space, seed=0))
            study.optimize(lambda trial: (trial.suggest_float("x", -4, 4) - 1) ** 2, n_trials=12)
    """
    factory = SAMPLERS.get(name)
    if factory is None:
        raise ConfigError(f"unknown sampler '{name}': choose one of {', '.join(SAMPLERS)}")
    return factory(space, seed, cost)
