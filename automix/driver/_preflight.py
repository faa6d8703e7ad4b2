"""Preflight: resolve what a search will run and check, before anything is written, that it can.

A `Plan` holds the objective, its space, the settings, the workspace, and the token axis the
schedulers use. For the built-in trainer it also knows each suggestion's cost, T = E·U/(1-r),
and the largest trial, whose data needs the corpora must be able to meet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from automix.config._space import SearchSpace, load_space
from automix.config._study import SearchConfig, StudyConfig
from automix.errors import ConfigError
from automix.samplers import grid_size
from automix.scheduling import checkpoint_cadence
from automix.study._workspace import Workspace
from automix.tracking._store import flatten
from automix.trial._objective import TrainerObjective, cpu_threads
from automix.trial._reporter import Objective
from trainer.config import TrainConfig

# The params that set a trial's size: their extreme corners give the smallest and largest trials.
SIZED = ("epochs", "mix_ratio", "unique_tokens", "budget.train_tokens")
UNCAPPED = 10**15


@dataclass
class Plan:
    """What a search runs and where; `cost(params)` is a suggestion's training tokens, when known."""

    objective: Objective
    space: SearchSpace
    settings: SearchConfig
    workspace: Workspace
    max_tokens: int
    eval_every: int
    logged_params: dict[str, Any]  # the search's MLflow parent run records these
    cost: Callable[[dict], float] | None = None
    data_check: TrainConfig | None = None  # the largest trial: the corpora must be able to feed it
    config: dict[str, Any] | None = None  # the resolved study config, an artifact of the parent run


def objective_plan(
    objective: Objective, space: SearchSpace, settings: SearchConfig, workspace: Workspace, cost=None
) -> Plan:
    """The plan of a custom objective: its own space and, optionally, its own cost function."""
    _check_grid(space, settings)
    logged = {"space": space.source, **flatten(settings.model_dump(), "search.")}
    max_tokens = settings.max_train_tokens or UNCAPPED
    return Plan(objective, space, settings, workspace, max_tokens, settings.grace_tokens or 1, logged, cost)


def trainer_plan(config: StudyConfig, settings: SearchConfig, workspace: Workspace) -> Plan:
    """The plan of the built-in trainer objective; a ConfigError if the space or budget cannot work."""
    base = config.base_train_config()
    cadence = checkpoint_cadence(settings, config.eval_every_tokens, base.checkpoint_every_tokens)
    base = base.model_copy(update={"checkpoint_every_tokens": cadence})
    space = load_space(settings.space, base)
    _check_grid(space, settings)
    for point in settings.enqueue:
        space.apply(point, base)  # a typo in an enqueued config fails here, not in a trial

    def cost(params: dict) -> float:
        return space.apply(params, base).budget.total_tokens

    max_tokens = _max_tokens(space, cost, settings.max_train_tokens)
    r_max = _corner(space, ("mix_ratio",), max).get("mix_ratio", space.fixed.get("mix_ratio", base.budget.mix_ratio))
    worst = base.budget.model_copy(update={"mode": "fixed_tokens", "train_tokens": max_tokens, "mix_ratio": r_max})
    objective = TrainerObjective(base, space, workspace.trial_dir, cpu_threads(settings.cpus_per_trial))
    logged = {**flatten(config.model_dump()), **flatten(settings.model_dump(), "search.")}
    return Plan(
        objective,
        space,
        settings,
        workspace,
        max_tokens,
        config.eval_every_tokens,
        logged,
        cost,  # the cost-aware sampler weighs suggestions by it; the searcher caps it only with max_train_tokens
        base.model_copy(update={"budget": worst}),
        config.model_dump(),
    )


def _check_grid(space: SearchSpace, settings: SearchConfig) -> None:
    if settings.sampler == "grid" and settings.n_trials > grid_size(space):
        raise ConfigError(f"the grid has {grid_size(space)} points: set search.n_trials to at most that")


def _max_tokens(space: SearchSpace, cost: Callable[[dict], float], cap: int | None) -> int:
    """The largest trial's T, or the cap; a ConfigError if even the smallest trial is over the cap."""
    largest = cost(_corner(space, SIZED, max))
    if cap is None:
        return largest
    smallest = cost(_corner(space, SIZED, min))
    if smallest > cap:
        raise ConfigError(
            f"search.max_train_tokens={cap:,} is below the smallest trial of the space "
            f"({smallest:,.0f} tokens): raise it or shrink epochs/unique_tokens"
        )
    return min(largest, cap)


def _corner(space: SearchSpace, names: tuple[str, ...], pick) -> dict[str, Any]:
    """The params of `names` set to their extreme (`pick` = max or min) values."""
    out = {}
    for name, d in space.distributions.items():
        if name in names:
            out[name] = pick(d.choices) if hasattr(d, "choices") else pick(d.low, d.high)
    return out
