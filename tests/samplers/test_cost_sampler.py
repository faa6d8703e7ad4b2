"""The cost-aware samplers (`search.sampler: costei`, automix/samplers/_cost.py, _gp_model.py, ...)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import optuna.distributions as od
import pytest
from optuna.trial import TrialState

from automix.config._space import SearchSpace
from automix.samplers import CostAwareSampler, make_sampler
from automix.samplers._cost import Encoder
from automix.samplers._gp_model import fit_model, log_ei

SPACE = {
    "weight_decay": od.FloatDistribution(0.01, 10.0, log=True),
    "epochs": od.IntDistribution(1, 32, log=True),
    "mix_ratio": od.FloatDistribution(0.0, 0.75, step=0.05),
}
GRID = {"a": od.IntDistribution(0, 3), "b": od.IntDistribution(0, 4), "c": od.CategoricalDistribution(["x", "y"])}


def tokens(p: dict) -> float:
    """T = E·U/(1 − r) with U = 100k."""
    return p["epochs"] * 1e5 / (1 - p["mix_ratio"])


def bowl(p: dict) -> float:
    """A loss that falls with tokens, with a weight-decay bowl whose best moves with epochs."""
    return 1 + 2 / math.log(tokens(p)) + 0.05 * math.log10(p["weight_decay"] / (0.1 * p["epochs"] ** 0.7)) ** 2


def grid_loss(p: dict) -> float:
    return (p["a"] - 2) ** 2 + (p["b"] - 3) ** 2 + (p["c"] == "x")


def grid_cost(p: dict) -> float:
    return 1.0 + p["a"] + p["b"]


def run(sampler, space, objective, n) -> optuna.Study:
    study = optuna.create_study(sampler=sampler)
    for _ in range(n):
        trial = study.ask(space)
        study.tell(trial, objective(trial.params))
    return study


def test_encoder_round_trip_keeps_steps_ints_and_choices():
    enc = Encoder({**SPACE, "c": od.CategoricalDistribution(["x", "y", "z"])})
    for params in ({"weight_decay": 0.3, "epochs": 8, "mix_ratio": 0.25, "c": "y"},
                   {"weight_decay": 0.01, "epochs": 32, "mix_ratio": 0.75, "c": "z"}):  # fmt: skip
        x = enc.encode(params)
        assert ((0 <= x) & (x <= 1)).all()
        back = enc.decode(x)
        assert back["epochs"] == params["epochs"] and back["c"] == params["c"]
        assert back["weight_decay"] == pytest.approx(params["weight_decay"])
        assert back["mix_ratio"] == pytest.approx(params["mix_ratio"])
    assert isinstance(enc.decode(np.full(4, 0.37))["epochs"], int)
    assert enc.grid() is None  # continuous weight decay: not enumerable
    assert len(Encoder(GRID).grid()) == 4 * 5 * 2


def test_log_ei_is_finite_and_ordered_far_in_the_tail():
    mean = np.array([0.0, 1.0, 5.0, 50.0, 500.0])
    values = log_ei(mean, np.ones(5), best=0.0)
    assert np.isfinite(values).all()
    assert (np.diff(values) < 0).all()  # a worse predicted mean never has a higher EI
    assert values[0] == pytest.approx(math.log(1 / math.sqrt(2 * math.pi)))  # EI at z = 0 is φ(0)·σ


def test_startup_points_are_cheap_distinct_and_seeded():
    first = run(CostAwareSampler(SPACE, cost=tokens, seed=3, n_startup_trials=5), SPACE, bowl, 5)
    again = run(CostAwareSampler(SPACE, cost=tokens, seed=3, n_startup_trials=5), SPACE, bowl, 5)
    params = [t.params for t in first.trials]
    assert params == [t.params for t in again.trials]
    costs = sorted(tokens(p) for p in params)
    # The cheapest quarter of the space: E·U/(1 − r) well below the largest trial's 12.8M tokens.
    assert costs[-1] < 0.05 * tokens({"epochs": 32, "mix_ratio": 0.75})
    assert len({tuple(sorted(p.items())) for p in params}) == 5


def test_finds_the_optimum_of_a_finite_grid_without_repeating_a_trained_point():
    study = run(make_sampler("costei", SearchSpace(GRID), 0, cost=grid_cost), GRID, grid_loss, 20)
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(keys)) == len(keys)  # never a trained point again: the trainer is deterministic
    assert study.best_value == 0


def test_learns_from_complete_trials_only_and_keeps_pruned_ones_pruned():
    sampler = CostAwareSampler(GRID, cost=grid_cost, seed=1, n_startup_trials=2)
    study = optuna.create_study(sampler=sampler)
    for i in range(6):
        trial = study.ask(GRID)
        if i % 2:
            trial.report(1e6, step=1)  # a pessimistic early estimate the model must not learn from
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, grid_loss(trial.params))
    assert [t.state for t in study.trials].count(TrialState.PRUNED) == 3
    assert study.ask(GRID).params  # still suggests, from the three complete trials


def test_a_failed_point_is_not_proposed_again():
    """A diverged (NaN) start-up point was proposed over and over: FAIL trials were not 'taken'."""
    study = optuna.create_study(sampler=make_sampler("costtrend", SearchSpace(SPACE), 0, cost=tokens))
    for _ in range(8):
        trial = study.ask(SPACE)
        study.tell(trial, math.nan if trial.params["weight_decay"] < 1 else bowl(trial.params))
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(keys)) == len(keys)
    assert TrialState.FAIL in [t.state for t in study.trials]


def test_without_a_cost_it_is_plain_expected_improvement():
    study = run(make_sampler("costei", SearchSpace(GRID), 0), GRID, grid_loss, 15)
    assert study.best_value <= 1


def test_reaches_the_most_expensive_point_for_a_fraction_of_the_sweep():
    """The best point is the costliest (epochs index 3: 8× index 0's tokens), as on the real grid."""
    space = {"epochs": od.IntDistribution(0, 3), "wd": od.IntDistribution(0, 6)}

    def loss(p: dict) -> float:
        return 2.0 - 0.2 * p["epochs"] + 0.05 * (p["wd"] - 4) ** 2

    def cost(p: dict) -> float:
        return 2.0 ** p["epochs"]

    sweep = sum(cost({"epochs": e}) for e in range(4)) * 7
    for seed in range(3):
        study = optuna.create_study(sampler=CostAwareSampler(space, cost=cost, seed=seed, n_startup_trials=3))
        spent = 0.0
        for _ in range(28):
            trial = study.ask(space)
            study.tell(trial, loss(trial.params))
            spent += cost(trial.params)
            if trial.params == {"epochs": 3, "wd": 4}:
                break
        assert trial.params == {"epochs": 3, "wd": 4}
        assert spent < 0.5 * sweep


def test_costgp_starts_optuna_gp_from_cheap_points():
    space = SearchSpace(SPACE)
    study = run(make_sampler("costgp", space, 2, cost=tokens), SPACE, bowl, 6)
    startup = [tokens(t.params) for t in study.trials[:5]]
    assert max(startup) < 0.05 * tokens({"epochs": 32, "mix_ratio": 0.75})  # the cheapest quarter of the space
    assert isinstance(study.sampler, optuna.samplers.GPSampler)  # trial 6 on: Optuna's own GP


def test_costtpe_starts_tpe_from_cheap_points_then_hands_over():
    space = SearchSpace(SPACE)
    study = run(make_sampler("costtpe", space, 2, cost=tokens), SPACE, bowl, 14)
    startup = [tokens(t.params) for t in study.trials[:10]]
    assert max(startup) < 0.05 * tokens({"epochs": 32, "mix_ratio": 0.75})
    later = [tokens(t.params) for t in study.trials[10:]]
    assert max(later) > max(startup)  # TPE's suggestions are not confined to the cheap quarter
    again = run(make_sampler("costtpe", space, 2, cost=tokens), SPACE, bowl, 14)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]  # seeded


def test_cost_trend_only_ever_says_dearer_is_better():
    x = np.linspace(0, 1, 8)[:, None]
    trend = np.linspace(0, 1, 8)
    falling, _ = fit_model(x, 2.0 - trend, trend)
    rising, _ = fit_model(x, 1.0 + trend, trend)
    far = np.array([[1.0]])
    assert falling(far, np.array([3.0]))[0][0] == pytest.approx(-1.0, abs=0.01)  # the fall, extrapolated
    # A loss rising with cost gets no trend: the GP alone, which keeps the trial's 2.0 (not 4.0).
    assert rising(far, np.array([3.0]))[0][0] == pytest.approx(2.0, abs=0.01)


def test_costtrend_reaches_a_dear_optimum_for_a_fraction_of_the_sweep():
    """When the loss falls with the tokens trained (the real grids) the trend carries cheap trials to
    the dear corner; lr and weight decay must still be found there."""
    space = {"epochs": od.IntDistribution(0, 5), "wd": od.IntDistribution(0, 6), "lr": od.IntDistribution(0, 3)}

    def loss(p: dict) -> float:
        return 2.0 - 0.1 * p["epochs"] + 0.05 * (p["wd"] - 4) ** 2 + 0.03 * (p["lr"] - 1) ** 2

    def cost(p: dict) -> float:
        return 2.0 ** p["epochs"]

    sweep = sum(cost({"epochs": e}) for e in range(6)) * 7 * 4
    for seed in range(3):
        study = optuna.create_study(sampler=make_sampler("costtrend", SearchSpace(space), seed, cost=cost))
        spent = 0.0
        for _ in range(40):
            trial = study.ask(space)
            study.tell(trial, loss(trial.params))
            spent += cost(trial.params)
            if trial.params == {"epochs": 5, "wd": 4, "lr": 1}:
                break
        assert trial.params == {"epochs": 5, "wd": 4, "lr": 1}
        assert spent < 0.1 * sweep
