"""The samplers' registry (automix/samplers/_registry.py): the one list of names a config accepts."""

from __future__ import annotations

import optuna
import pytest

from automix.config import SearchConfig, parse_space
from automix.config._study import format_validation_error
from automix.errors import ConfigError
from automix.samplers import SAMPLERS, make_sampler, register_sampler, sampler_names

SPACE = parse_space({"x": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.25}})


def test_the_config_accepts_exactly_the_registered_names():
    assert "robustgp" in sampler_names() and SearchConfig().sampler == "tpe"  # the default
    for name in sampler_names():
        assert SearchConfig(sampler=name).sampler == name
    with pytest.raises(ValueError) as err:
        SearchConfig(sampler="bayes")
    line = format_validation_error(err.value)
    assert line.startswith("'sampler': Input should be 'tpe', 'gp', 'robustgp'") and "(got 'bayes')" in line
    assert "\n" not in line
    with pytest.raises(ConfigError, match="unknown sampler 'bayes': choose one of tpe, gp, robustgp"):
        make_sampler("bayes", SPACE, 0)


def test_a_registered_sampler_is_built_by_name_and_accepted_by_the_config():
    def factory(space, seed, cost):
        return optuna.samplers.RandomSampler(seed=seed + 1)

    register_sampler("random_plus_one", factory)
    try:
        assert SearchConfig(sampler="random_plus_one").sampler == "random_plus_one"
        assert isinstance(make_sampler("random_plus_one", SPACE, 0), optuna.samplers.RandomSampler)
        with pytest.raises(ValueError, match="already registered"):
            register_sampler("random_plus_one", factory)
        with pytest.raises(ValueError, match="already registered"):
            register_sampler("robustgp", factory)  # a built-in keeps its meaning
    finally:
        del SAMPLERS["random_plus_one"]
    assert "random_plus_one" not in sampler_names()
