"""`automix compare`'s paired differences: the joint study minus each single lever, seed by seed."""

from __future__ import annotations

import pytest

from automix.analysis._compare import difference_table, paired_difference


def _lever(study: str, losses: list[float | None]) -> dict:
    return {"study": study, "reruns": {"target_val_loss": losses}}


def test_a_shared_seed_effect_cancels_in_the_paired_interval():
    # Seed 2 is a bad seed for both studies: unpaired, the spread would swamp the 0.1 gap.
    joint = _lever("joint", [1.50, 1.75, 1.52])
    tune = _lever("tune_only", [1.60, 1.84, 1.63])
    d = paired_difference(joint, tune, "target_val_loss")
    assert d["n"] == 3 and d["mean"] == pytest.approx(-0.10)
    # t(0.975, 2) = 4.303; the differences -0.10, -0.09, -0.11 have sd 0.01.
    assert d["low"] == pytest.approx(-0.10 - 4.303 * 0.01 / 3**0.5, abs=1e-4)
    assert d["high"] == pytest.approx(-0.10 + 4.303 * 0.01 / 3**0.5, abs=1e-4)
    assert d["excludes_zero"]


def test_missing_runs_are_left_out_and_one_pair_gives_no_interval():
    d = paired_difference(_lever("joint", [1.5, None]), _lever("mix_only", [1.6, 1.7]), "target_val_loss")
    assert d["n"] == 1 and d["mean"] == pytest.approx(-0.1)
    assert d["low"] is None and not d["excludes_zero"]
    row = difference_table({"differences": [d]})[0]
    assert row["difference"] == "joint - mix_only" and row["95% interval (n=1 seeds)"] == "n/a"


def test_an_interval_across_zero_is_seed_noise():
    d = paired_difference(_lever("joint", [1.50, 1.62, 1.55]), _lever("tune", [1.56, 1.58, 1.57]), "target_val_loss")
    assert d["low"] < 0 < d["high"] and not d["excludes_zero"]
    assert difference_table({"differences": [d]})[0]["beyond seed noise"] == "no"
