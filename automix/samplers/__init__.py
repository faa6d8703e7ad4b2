"""Optuna samplers by name (`search.sampler`), and automix's own: robust GP, cost-aware, sweep.

`make_sampler(name, space, seed, cost)` builds a registered sampler (`sampler_names()`; add one with
`register_sampler`); every one is seeded, so the same seed gives the same suggestions. The classes
are Optuna samplers that work in any Optuna study, with or without automix's search. The layer
imports Optuna, numpy, scipy and `automix.config`, never Ray, torch or MLflow (docs/design.md,
"Layers"); `botorch` imports torch when it is built.
"""

from automix.samplers._cheap_start import CheapStartSampler
from automix.samplers._cost import CostAwareSampler
from automix.samplers._registry import SAMPLERS, SamplerFactory, make_sampler, register_sampler, sampler_names
from automix.samplers._robust import RobustSampler
from automix.samplers._staged import StagedSampler
from automix.samplers._sweep import SweepSampler, grid_size, grid_values

__all__ = [
    "SAMPLERS",
    "CheapStartSampler",
    "CostAwareSampler",
    "RobustSampler",
    "SamplerFactory",
    "StagedSampler",
    "SweepSampler",
    "grid_size",
    "grid_values",
    "make_sampler",
    "register_sampler",
    "sampler_names",
]
