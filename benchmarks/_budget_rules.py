"""The analysis of benchmarks/budget_transfer.py: AdamW's timescale of a weight decay, a wd curve's
optimum, the budget rules and how far a prediction lands from a sweep's best."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from trainer.budget import epochs_in
from trainer.config import TrainConfig
from trainer.model import build_model


@dataclass(frozen=True)
class Rule:
    """A weight-decay budget rule: τ in one unit held constant, or a power law in tokens per parameter."""

    name: str
    unit: str  # the key of `timescale` the rule is stated in
    power_law: bool = False  # log τ = a + β·log(T/N), fitted, instead of a constant


RULES = (
    Rule("(a) τ constant in epochs: wd ∝ 1/U", "epochs"),
    Rule("(b) wd constant: τ constant in steps", "steps"),
    Rule("(c) τ/T = c·(T/N)^β, Power Lines", "share", power_law=True),
)


def timescale(config: TrainConfig, wd: float) -> dict[str, float]:
    """AdamW's timescale τ = 1/(lr·wd) at `config` (peak lr): in steps, tokens, epochs over U, and as a share of T.

    Args:
        config: the run: its lr, batch, sequence length and budget.
        wd: the weight decay (stated at base width; μP keeps lr·wd at every width).

    Returns:
        steps, tokens, epochs, share. Each is proportional to 1/wd, so wd = τ(wd = 1)/τ inverts it.
    """
    steps = 1 / (config.optim.learning_rate * wd)
    tokens = steps * config.optim.batch_size * config.data.seq_len
    budget = config.budget
    return {
        "steps": steps,
        "tokens": tokens,
        "epochs": epochs_in(tokens, budget.unique_tokens, budget.mix_ratio),
        "share": tokens / budget.total_tokens,
    }


def n_params(config: TrainConfig) -> int:
    """All parameters of the model, embeddings and readout included (built on the meta device)."""
    with torch.device("meta"):
        model = build_model(config.model, 257, config.data.seq_len, init=False)
    return sum(p.numel() for p in model.parameters())


def optimum(wds: np.ndarray, losses: np.ndarray) -> tuple[float, bool]:
    """The best wd of one curve: the vertex of the parabola in log wd through the grid's best and its neighbours.

    Args:
        wds: the grid, ascending.
        losses: the seed-mean loss at each.

    Returns:
        The refined best wd, between the grid's best's neighbours, and whether the grid's best is at
        an edge of the grid (then it is returned as is: the optimum may lie beyond).
    """
    i = int(np.argmin(losses))
    if i in (0, len(wds) - 1):
        return float(wds[i]), True
    x, y = np.log(wds[i - 1 : i + 2]), losses[i - 1 : i + 2]
    if not np.isfinite(y).all():  # a diverged neighbour: no parabola
        return float(wds[i]), False
    a, b, _ = np.polyfit(x, y, 2)
    # the middle point is the lowest, so a > 0 unless all three are equal (flat: keep the grid's best)
    return (float(math.exp(-b / (2 * a))) if a > 0 else float(wds[i])), False


def grid_position(grid: Sequence[float], wd: float) -> float:
    """Where `wd` sits on an ascending grid, in grid steps from its first value, linear in log wd between points.

    Beyond the ends it goes on at the end step, so a prediction off the grid still has a distance.
    (The grid 0.01, 0.03, 0.1 … alternates 3× and 3.3× steps: grid steps, not log 3, are the unit.)
    """
    logs, x = np.log(np.asarray(grid, dtype=float)), math.log(wd)
    if x < logs[0]:
        return float((x - logs[0]) / (logs[1] - logs[0]))
    if x > logs[-1]:
        return float(len(logs) - 1 + (x - logs[-1]) / (logs[-1] - logs[-2]))
    return float(np.interp(x, logs, np.arange(len(logs))))


def predict(rule: Rule, fit: pd.DataFrame, target: TrainConfig, tpp: float) -> tuple[float, float | None]:
    """The wd that `rule`, fitted on the optima in `fit`, predicts at `target`.

    Args:
        rule: the rule.
        fit: rows of `optima`: each optimum's τ in the rule's unit and its tokens per parameter.
        target: the held-out run (its lr, batch and budget convert τ back to a wd).
        tpp: the target's tokens per parameter T/N.

    Returns:
        The predicted wd, and the fitted exponent β of a power law; nan and None for a power law
        that `fit` does not identify (fewer than two distinct T/N), None for a constant rule.
    """
    log_tau = np.log(fit[f"tau_{rule.unit}"].to_numpy())
    at_wd_1 = timescale(target, 1.0)[rule.unit]
    if not rule.power_law:
        return at_wd_1 / math.exp(log_tau.mean()), None
    if fit.tpp.nunique() < 2:
        return math.nan, None
    beta, intercept = np.polyfit(np.log(fit.tpp.to_numpy()), log_tau, 1)
    return at_wd_1 / math.exp(intercept + beta * math.log(tpp)), float(beta)


def judge(rule: str, wd: float, beta: float | None, cell: pd.Series, mean: pd.Series) -> dict:
    """How far a predicted wd is from the sweep's best at one held-out cell.

    Args:
        rule: the rule's name.
        wd: its predicted wd (nan where it is not identified).
        beta: its fitted exponent, if a power law.
        cell: the held-out cell's row of `optima`.
        mean: the cell's seed-mean loss per grid wd.

    Returns:
        width, U, rule, predicted_wd, beta, best_wd, refined_wd; steps_apart (grid steps
        from the grid's best, + above) and regret (the loss at the grid wd nearest the prediction above
        the best), both None where nothing was predicted.
    """
    record = {"width": int(cell.width), "U": int(cell.U), "rule": rule, "predicted_wd": wd, "beta": beta}
    record |= {
        "best_wd": float(cell.best_wd),
        "refined_wd": float(cell.refined_wd),
        "steps_apart": None,
        "regret": None,
    }
    if math.isfinite(wd):
        grid = sorted(mean.index)
        at = grid_position(grid, wd)
        nearest = grid[min(max(round(at), 0), len(grid) - 1)]
        record["steps_apart"] = at - grid.index(cell.best_wd)
        record["regret"] = float(mean[nearest] - mean.min())
    return record
