"""The search run (driver side): `search` and `search_objective` in phases, the preflight `Plan`,
and the driver process's lifecycle with the local Ray cluster it starts."""

from automix.driver._preflight import Plan, objective_plan, trainer_plan
from automix.driver._search import sampler_seed, search, search_objective

__all__ = ["Plan", "objective_plan", "sampler_seed", "search", "search_objective", "trainer_plan"]
