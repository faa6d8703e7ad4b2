"""The effective-data multiplier: synthetic runs with a known answer, and the CLI's input errors."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from automix.analysis._multiplier import Fit, _scaled, estimate, fit_curve, select
from automix.errors import ConfigError

U0 = 50_000
UNITS = np.array([12_500, 25_000, 50_000, 100_000, 200_000])
TRUE = 2.5  # the mixed lever scores what tuned target-only training on 2.5·U0 would
CURVES = {
    "loss": (lambda u: 1.3 + 2.0 * (u / 1e5) ** -0.35, True),  # falls with data
    "acc": (lambda u: 0.6 - 0.2 * (u / 1e5) ** -0.3, False),  # rises with data
}


def _mixed(curve, rng, searches: int = 1, seeds: int = 3, spread: float = 0.0) -> np.ndarray:
    """searches × seeds scores around curve(TRUE·U0); rows offset by ±spread, the seeds' noise shared."""
    offsets = np.linspace(-spread, spread, searches)[:, None]
    return curve(TRUE * U0) + offsets + rng.normal(0, 0.002, seeds)[None, :]


@pytest.mark.parametrize("name", CURVES)
def test_fit_recovers_a_known_multiplier(name):
    curve, lower = CURVES[name]
    rng = np.random.default_rng(0)
    runs = curve(UNITS)[:, None, None] + rng.normal(0, 0.002, (len(UNITS), 1, 3))
    est = estimate("m", UNITS, runs, _mixed(curve, rng), U0, lower, n_boot=300)
    assert est.fit.kind == "power"
    assert est.multiplier == pytest.approx(TRUE, rel=0.15)
    assert est.low < TRUE < est.high
    assert est.high - est.low < 2.0  # tight points give a usefully narrow interval


@pytest.mark.parametrize("name", CURVES)
def test_retuning_removes_the_inflation_of_a_recipe_tuned_at_one_u(name):
    """The base recipe is the best at small U only; another grid point is the best from U = 50k on."""
    curve, lower = CURVES[name]
    rng = np.random.default_rng(1)
    drop = abs(curve(UNITS[0]) - curve(UNITS[-1]))
    harm = drop * np.array([[0, 0.3], [0, 0.15], [0.02, 0], [0.05, 0], [0.1, 0]])
    best = curve(UNITS)[:, None] + (harm if lower else -harm)  # U × grid: worse by `harm`
    runs = best[:, :, None] + rng.normal(0, 0.002, (len(UNITS), 2, 3))
    mixed = _mixed(curve, rng)
    assert select(runs, lower)[0].tolist() == [0, 0, 1, 1, 1]
    retuned = estimate("m", UNITS, runs, mixed, U0, lower, n_boot=300)
    base_only = estimate("m", UNITS, runs[:, :1], mixed, U0, lower, n_boot=300)
    assert retuned.multiplier == pytest.approx(TRUE, rel=0.15)
    assert retuned.low < TRUE < retuned.high
    # the base recipe alone still makes a falling curve, but a flatter one: it inflates the multiplier
    assert math.isfinite(base_only.multiplier) and base_only.multiplier > 1.3 * retuned.multiplier
    assert base_only.low > TRUE


def test_search_to_search_variation_widens_the_interval():
    curve, lower = CURVES["loss"]
    rng = np.random.default_rng(2)
    runs = curve(UNITS)[:, None, None] + rng.normal(0, 0.002, (len(UNITS), 1, 3))
    alike = estimate("m", UNITS, runs, _mixed(curve, np.random.default_rng(3), searches=3), U0, lower, n_boot=300)
    spread = _mixed(curve, np.random.default_rng(3), searches=3, spread=0.1)
    apart = estimate("m", UNITS, runs, spread, U0, lower, n_boot=300)
    assert apart.score == pytest.approx(alike.score)  # same mean, so the same point estimate
    assert apart.multiplier == pytest.approx(alike.multiplier)
    assert apart.high - apart.low > 2 * (alike.high - alike.low)


def test_thin_data_falls_back_to_a_monotone_loglinear_fit():
    u = np.array([1e4, 2e4, 4e4])
    y = 3.0 - 0.2 * np.log(u)
    fit = fit_curve(u, y)
    assert fit.kind == "loglinear"
    assert fit.invert(3.0 - 0.2 * math.log(8e4)) == pytest.approx(8e4, rel=1e-6)


def test_a_score_beyond_the_asymptote_has_no_finite_multiplier():
    fit = Fit("power", a=1.3, b=2.0, beta=0.3, u0=1e5)
    assert fit.invert(1.2) == math.inf  # lower than any amount of target data reaches
    assert fit.invert(float(fit.predict(np.array([3e5]))[0])) == pytest.approx(3e5)


def test_a_grid_point_scales_only_its_settings(make_cfg):
    base = make_cfg(epochs=2.0)
    point = _scaled(base, {"weight_decay": 3.0, "learning_rate": 0.5, "epochs": 1.5})
    assert point.optim.weight_decay == pytest.approx(3 * base.optim.weight_decay)
    assert point.optim.learning_rate == pytest.approx(0.5 * base.optim.learning_rate)
    assert point.budget.epochs == 3.0
    assert point.model_dump(exclude={"optim", "budget"}) == base.model_dump(exclude={"optim", "budget"})
    with pytest.raises(ConfigError, match="below 1"):
        _scaled(base, {"epochs": 0.25})


@pytest.mark.parametrize(
    ("retune", "needles"),
    [
        ("momentum=1,2", ("momentum", "weight_decay, learning_rate, epochs")),
        ("weight_decay", ("--retune takes KEY=F1,F2",)),
        ("weight_decay=1,x", ("--retune takes KEY=F1,F2",)),
        ("=1,2", ("--retune takes KEY=F1,F2",)),
        ("learning_rate=0,1", ("positive",)),
    ],
)
def test_a_bad_retune_is_a_one_line_usage_error(study_yaml, usage_error, retune, needles):
    usage_error(["multiplier", str(study_yaml()), "--units", "500,1000", "--retune", retune], *needles)


def test_epochs_are_not_retuned_in_fixed_tokens_mode(study_yaml, usage_error):
    path = study_yaml(budget={"mode": "fixed_tokens", "train_tokens": 8000})
    args = ["multiplier", str(path), "--units", "500,1000", "--retune", "epochs=1,2"]
    usage_error(args, "fixed_tokens", "retune weight_decay and learning_rate")


def test_searches_of_other_budgets_are_refused(study_yaml, usage_error, tmp_path):
    first = shutil.copy(study_yaml(), tmp_path / "first.yaml")
    other = study_yaml(budget={"unique_tokens": 3000})
    usage_error(["multiplier", str(first), "--searches", str(other), "--units", "500,1000"], "one budget")


@pytest.mark.parametrize("reference_budget", [{"mode": "fixed_tokens", "train_tokens": 16000}, {"mode": "epochs"}])
def test_a_reference_at_another_compute_is_refused(study_yaml, usage_error, tmp_path, reference_budget):
    mixed = shutil.copy(study_yaml(budget={"mode": "fixed_tokens", "train_tokens": 8000}), tmp_path / "mixed.yaml")
    reference = study_yaml(budget=reference_budget)
    args = ["multiplier", str(mixed), "--reference", str(reference), "--units", "500,1000"]
    usage_error(args, "the reference trains T =", "same budget.mode and train_tokens")


def test_held_out_seeds_that_also_choose_are_refused(study_yaml, usage_error):
    args = ["multiplier", str(study_yaml()), "--units", "500,1000", "--seeds", "1,2", "--holdout-seeds", "2,3"]
    usage_error(args, "held-out seeds [2]", "--holdout-seeds other seeds")
