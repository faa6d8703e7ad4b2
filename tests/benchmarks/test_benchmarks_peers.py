"""The synthetic learning curves and the stock-peers harness (benchmarks/synthetic.py, curves.py, peers.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import peers  # noqa: E402
from _grids import load  # noqa: E402
from curves import dump, synthetic_grid  # noqa: E402
from synthetic import SURFACES  # noqa: E402

PAPER = SURFACES["paper"]
EVERY = 2 * PAPER.unique


def params(epochs: int, mix_ratio: float, lr: float = 5e-3, wd: float = 0.3) -> dict:
    return {"epochs": epochs, "mix_ratio": mix_ratio, "learning_rate": lr, "weight_decay": wd}


@pytest.mark.parametrize("name", ["paper", "scarce", "sharp", "noisy", "cliff"])
@pytest.mark.parametrize("point", [params(1, 0.0), params(6, 0.4, 1e-2, 1.0), params(32, 0.75, 3e-2, 0.01)])
def test_curve_ends_at_the_final_loss(name, point):
    surface = SURFACES[name]
    curve = surface.curve(point, EVERY)
    assert curve[-1] == (surface.train_tokens(point), surface.loss(point))
    tokens = [t for t, _ in curve]
    assert tokens == sorted(set(tokens)) and tokens[:-1] == [EVERY * k for k in range(1, len(tokens))]
    assert tokens[-1] - EVERY * (len(tokens) - 1) <= EVERY


def test_curve_decreases_and_the_decay_drops_it():
    point = params(8, 0.0)
    losses = [v for _, v in PAPER.curve(point, PAPER.unique / 2)]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    total = PAPER.train_tokens(point)
    before = PAPER.loss_at(point, 0.8 * total)  # the decay starts here, and removes the stable gap
    assert before - PAPER.loss(point) > PAPER.stable_gap
    assert PAPER.loss_at(point, total * (1 - 1e-9)) == pytest.approx(PAPER.loss(point), abs=1e-6)


@pytest.mark.parametrize("epochs", [2, 6, 13, 32])
@pytest.mark.parametrize("share", [1 / 9, 1 / 3])
def test_mixed_runs_look_worse_at_equal_tokens_and_end_better(epochs, share):
    """The bias of equal-token early stopping: r = 0.5 trails r = 0 of the same E early, and wins at the end."""
    plain, mixed = params(epochs, 0.0), params(epochs, 0.5)
    tokens = share * PAPER.train_tokens(mixed)
    assert PAPER.loss_at(mixed, tokens) > PAPER.loss_at(plain, tokens)
    assert PAPER.loss(mixed) < PAPER.loss(plain)


def test_diverged_points_report_the_diverged_loss_from_the_start():
    point = params(4, 0.25, 3e-2, 0.1)
    assert {v for _, v in SURFACES["cliff"].curve(point, EVERY)} == {7.0}
    assert all(math.isnan(v) for _, v in SURFACES["nan_cliff"].curve(point, EVERY))


TINY = {"weight_decay": [0.1, 1.0], "learning_rate": [1e-3, 5e-3], "epochs": [2, 8], "mix_ratio": [0.0, 0.5]}


def test_a_synthetic_grid_reads_back_as_a_committed_grid(tmp_path):
    grid = synthetic_grid("paper", TINY)
    again = load(dump(grid, tmp_path / "tiny.json"))
    assert again.axes == grid.axes and again.curves == grid.curves
    assert again.target == grid.target and again.oracle_floor() == grid.oracle_floor()


def test_a_grid_with_diverged_nan_points_has_a_finite_best():
    grid = synthetic_grid("nan_cliff", TINY | {"learning_rate": [1e-3, 3e-2]})
    assert any(math.isnan(c[-1][1]) for c in grid.curves.values())  # lr 3e-2 diverges there
    assert math.isfinite(grid.best) and grid.oracle_floor() <= grid.total


def test_peers_reach_the_target_on_a_tiny_grid():
    grid = synthetic_grid("paper", TINY)
    size = len(grid.curves)
    for seed in (0, 1):
        run = peers.run_method(grid, "grid", seed, size)  # the whole grid, in a random order: must reach it
        assert math.isfinite(run.tokens) and grid.oracle_floor() <= run.tokens <= grid.total
        assert run.repeats == 0 and run.trials <= size
        pruned = peers.run_method(grid, "tpe+hyperband", seed, 3 * size)
        assert pruned.trials <= 3 * size and pruned.tokens > 0


def test_multi_fidelity_evaluation_truncates_the_curve():
    grid = synthetic_grid("paper", TINY)
    index = max(grid.curves, key=grid.cost)
    curve = grid.curves[index]
    assert peers.evaluate(grid, index, grid.cost(index)) == (grid.cost(index), grid.final(index), True)
    tokens, loss, finished = peers.evaluate(grid, index, curve[2][0] + 1)
    assert (tokens, loss, finished) == (curve[2][0], curve[2][1], False)
    assert peers.evaluate(grid, index, 1.0)[:2] == curve[0]  # before the first evaluation: train to it
