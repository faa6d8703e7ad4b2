"""The effective-data multiplier: the fit recovers a known multiplier from synthetic points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from automix.analysis._multiplier import R_STAR, Fit, effective_data, estimate, fit_curve

U0, E = 50_000, 8.0
UNITS = [12_500, 25_000, 50_000, 100_000, 200_000]


def _points(curve, seeds: int, noise: float, rng):
    units = np.repeat(UNITS, seeds)
    d = effective_data(units, np.full(len(units), E))
    return units, curve(d) + rng.normal(0, noise, len(units))


@pytest.mark.parametrize(
    "curve",
    [
        lambda d: 1.3 + 2.0 * (d / 1e5) ** -0.35,  # a loss: falls with data
        lambda d: 0.6 - 0.3 * (d / 1e5) ** -0.5,  # an accuracy: rises with data
    ],
)
def test_fit_recovers_a_known_multiplier(curve):
    rng = np.random.default_rng(0)
    units, values = _points(curve, seeds=3, noise=0.002, rng=rng)
    true = 2.5  # the mixed run scores what target-only training on 2.5·U0 would
    score = float(curve(effective_data(np.array([true * U0]), np.array([E])))[0])
    mixed = score + rng.normal(0, 0.002, 3)
    est = estimate("m", units, [E] * len(units), values, mixed, U0, E, n_boot=300)
    assert est.fit.kind == "power"
    assert est.multiplier == pytest.approx(true, rel=0.15)
    assert est.low < true < est.high
    assert est.high - est.low < 2.0  # tight points give a usefully narrow interval


def test_effective_data_discounts_repeats():
    u = np.array([100.0, 100.0, 100.0])
    d = effective_data(u, np.array([0.5, 1.0, 1e6]))
    assert d[0] == pytest.approx(50) and d[1] == pytest.approx(100)
    assert d[2] == pytest.approx(100 * (1 + R_STAR))  # infinite repetition is worth 1 + R* epochs


def test_thin_data_falls_back_to_a_monotone_loglinear_fit():
    d = np.array([1e4, 2e4, 4e4])
    y = 3.0 - 0.2 * np.log(d)
    fit = fit_curve(d, y)
    assert fit.kind == "loglinear"
    assert fit.invert(3.0 - 0.2 * math.log(8e4)) == pytest.approx(8e4, rel=1e-6)


def test_a_score_beyond_the_asymptote_has_no_finite_multiplier():
    fit = Fit("power", a=1.3, b=2.0, beta=0.3, d0=1e5)
    assert fit.invert(1.2) == math.inf  # lower than any amount of target data reaches
    assert fit.invert(float(fit.predict(np.array([3e5]))[0])) == pytest.approx(3e5)
