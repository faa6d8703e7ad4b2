"""examples/levers/proxy_target.py: the local sweep around the transferred point and the rank correlation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parents[2] / "examples" / "levers" / "proxy_target.py"
spec = importlib.util.spec_from_file_location("proxy_target", SCRIPT)
proxy_target = importlib.util.module_from_spec(spec)
spec.loader.exec_module(proxy_target)


def test_the_sweep_moves_one_setting_at_a_time_and_keeps_r_inside_the_space(make_cfg):
    center = make_cfg(mix_ratio=0.05)
    sweep = proxy_target.neighbours(center)
    assert sweep["weight_decay ×3"].optim.weight_decay == pytest.approx(3 * center.optim.weight_decay)
    assert sweep["weight_decay ×3"].optim.learning_rate == center.optim.learning_rate
    assert sweep["learning_rate ×0.5"].optim.learning_rate == pytest.approx(center.optim.learning_rate / 2)
    assert sweep["mix_ratio -0.15"].budget.mix_ratio == 0.0  # clipped at the space's lower bound
    assert sweep["mix_ratio +0.15"].budget.mix_ratio == 0.2
    assert sweep["mix_ratio +0.15"].optim == center.optim
    # At a bound, a shift that the clip would turn into the centre itself is left out.
    assert "mix_ratio -0.15" not in proxy_target.neighbours(make_cfg(mix_ratio=0.0))
    assert proxy_target.neighbours(make_cfg(mix_ratio=0.7))["mix_ratio +0.15"].budget.mix_ratio == 0.75


def test_rank_correlation_reads_the_orderings_and_its_interval_the_seeds():
    rng = np.random.default_rng(0)
    means = np.linspace(1.4, 1.6, 8)
    proxy = means[:, None] + rng.normal(0, 0.001, (8, 5))
    same = proxy_target.rank_correlation(proxy, means[:, None] + rng.normal(0, 0.001, (8, 3)))
    assert same["rho"] == pytest.approx(1.0) and same["low"] > 0.9 and same["n"] == 8
    reversed_ = proxy_target.rank_correlation(proxy, means[::-1, None] + rng.normal(0, 0.001, (8, 3)))
    assert reversed_["rho"] == pytest.approx(-1.0)
    # Seed noise as large as the gaps between configurations: the interval widens to say so.
    noisy = proxy_target.rank_correlation(proxy, means[:, None] + rng.normal(0, 0.2, (8, 3)))
    assert noisy["high"] - noisy["low"] > 0.5


def test_searches_that_ended_on_the_same_settings_count_once():
    same = {"weight_decay": 0.1, "learning_rate": 0.003, "mix_ratio": 0.05}
    compare = {
        "levers": [
            {"lever": "mix_only", "searches": [{"study": "s1", "settings": same}, {"study": "s2", "settings": same}]},
            {"lever": "joint", "searches": [{"study": "s3", "settings": same}]},
        ]
    }
    # The same point in another lever's space stays: it is that lever's answer.
    assert [s["study"] for s in proxy_target._searches(compare)] == ["s1", "s3"]
