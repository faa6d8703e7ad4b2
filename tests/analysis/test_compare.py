"""`automix compare`'s differences: each pair of levers, over seeds and over searches."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from automix.analysis._compare import (
    difference_table,
    lever_difference,
    lever_differences,
    paired_interval,
    welch_interval,
)


def _lever(name: str, *searches: list[float | None]) -> dict:
    return {"lever": name, "searches": [{"reruns": {"target_val_loss": list(s)}} for s in searches]}


def test_a_shared_seed_effect_cancels_in_the_seed_interval():
    # Seed 2 is a bad seed for both levers: unpaired, the spread would swamp the 0.1 gap.
    d = lever_difference(
        _lever("joint", [1.50, 1.75, 1.52]), _lever("tune_only", [1.60, 1.84, 1.63]), "target_val_loss"
    )
    assert d["mean"] == pytest.approx(-0.10)
    # t(0.975, 2) = 4.303; the differences -0.10, -0.09, -0.11 have sd 0.01.
    assert d["seed"]["low"] == pytest.approx(-0.10 - 4.303 * 0.01 / 3**0.5, abs=1e-4)
    assert d["seed"]["high"] == pytest.approx(-0.10 + 4.303 * 0.01 / 3**0.5, abs=1e-4)
    # One search per lever: search variation is not measured, and the verdict says so.
    assert d["search"]["low"] is None and not d["searches_counted"] and d["excludes_zero"]
    assert difference_table({"differences": [d]})[0]["verdict"] == "beyond seed noise (one search per lever)"


def test_search_to_search_spread_widens_the_interval_and_can_overturn_a_verdict():
    # Each search is consistent across seeds, but the searches of a lever end at different points.
    joint = _lever("joint", [1.50, 1.51, 1.50], [1.62, 1.63, 1.62], [1.55, 1.55, 1.56])
    tune = _lever("tune_only", [1.60, 1.61, 1.60], [1.58, 1.58, 1.59], [1.61, 1.60, 1.61])
    d = lever_difference(joint, tune, "target_val_loss")
    assert d["seed"]["low"] < d["seed"]["high"] < 0  # seeds alone: "joint wins"
    assert d["search"]["low"] < 0 < d["search"]["high"]  # counting searches: it does not
    assert d["searches_counted"] and not d["excludes_zero"]
    row = difference_table({"differences": [d]})[0]
    assert row["verdict"] == "within search and seed noise"
    assert row["95% searches and seeds (n=[3, 3])"] != "n/a"


def test_welch_interval_matches_the_textbook_formula():
    a, b = np.array([1.0, 1.2, 1.1]), np.array([1.5, 1.4, 1.6, 1.5])
    out = welch_interval(a[:, None], b[:, None])  # 3 and 4 searches, one seed each
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 4
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)
    half = stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    assert out["low"] == pytest.approx(a.mean() - b.mean() - half)
    assert out["high"] == pytest.approx(a.mean() - b.mean() + half)


def test_a_lone_search_brings_its_seed_noise_into_the_search_interval():
    # Three searches that agree exactly, against one exhaustive grid whose point is noisy across seeds:
    # the grid's seed spread is the interval's only variance (it used to count for nothing, leaving an
    # interval of zero width).
    searches = _lever("joint", [1.54, 1.55, 1.56], [1.545, 1.55, 1.555], [1.55, 1.55, 1.55])
    grid = _lever("tune_grid", [1.44, 1.50, 1.42])
    d = lever_difference(searches, grid, "target_val_loss")
    seeds = np.array([1.44, 1.50, 1.42])
    half = stats.t.ppf(0.975, 2) * seeds.std(ddof=1) / 3**0.5  # s²/n of the grid's mean, n − 1 = 2 df
    assert d["search"]["n"] == [3, 1]
    assert d["search"]["low"] == pytest.approx(1.55 - seeds.mean() - half)
    assert d["search"]["high"] == pytest.approx(1.55 - seeds.mean() + half)


def test_welch_degrees_of_freedom_combine_a_lone_search_with_searches():
    a = np.array([[1.50, 1.52], [1.56, 1.54], [1.53, 1.53]])  # three searches: means 1.51, 1.55, 1.53
    b = np.array([[1.40, 1.46, 1.43, 1.45]])  # one study, four seeds
    out = welch_interval(a, b)
    va, vb = np.var([1.51, 1.55, 1.53], ddof=1) / 3, b.var(ddof=1) / 4
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)
    half = stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    assert out["low"] == pytest.approx(1.53 - b.mean() - half)
    assert out["high"] == pytest.approx(1.53 - b.mean() + half)


def test_missing_runs_are_left_out_and_one_pair_gives_no_interval():
    d = lever_difference(_lever("joint", [1.5, None]), _lever("mix_only", [1.6, 1.7]), "target_val_loss")
    assert d["seed"]["n"] == 1 and d["seed"]["low"] is None and not d["excludes_zero"]
    assert d["mean"] == pytest.approx(1.5 - 1.65)
    assert paired_interval(np.array([0.1]))["low"] is None
    row = difference_table({"differences": [d]})[0]
    assert row["difference"] == "joint - mix_only" and row["95% seeds only (n=1)"] == "n/a"


def test_every_pair_of_levers_is_compared_earlier_minus_later():
    levers = [
        _lever("joint", [1.40, 1.42], [1.41, 1.43]),
        _lever("mix_only", [1.45, 1.47], [1.46, 1.48]),
        _lever("tune_only", [1.50, 1.52], [1.52, 1.52]),
    ]
    pairs = lever_differences(levers, ["target_val_loss"])
    assert [(d["first"], d["other"]) for d in pairs] == [
        ("joint", "mix_only"),
        ("joint", "tune_only"),
        ("mix_only", "tune_only"),
    ]
    assert [d["mean"] for d in pairs] == pytest.approx([-0.05, -0.10, -0.05])
    # Bonferroni over 3 pairs: each interval at 98.3% is wider than its 95% one.
    for d in pairs:
        assert d["familywise"]["pairs"] == 3
        assert d["familywise"]["low"] < d["search"]["low"] and d["familywise"]["high"] > d["search"]["high"]
