"""A synthetic loss surface shaped like a data-constrained scaling law over (lr, wd, E, r).

Used to benchmark samplers where the optimum is known and a trial costs nothing but arithmetic.
Shape (Muennighoff et al. 2023, plus mixing and hyperparameter bowls):
- repeated target data is worth less each epoch: D' = U + U·R*·(1 − e^(−(E−1)/R*));
- auxiliary tokens r·T help with a transfer efficiency c, and dilute the target when r is high;
- the loss is E0 + B / (D' + c·r·T)^β, plus log-quadratic bowls around the best lr and around a
  best weight decay that grows with repetition (the two levers interact; docs/design.md "Search").
"""

from __future__ import annotations

import math

U = 100_000
R_STAR = 15.0
E0, B, BETA = 1.0, 60.0, 0.38
TRANSFER, DILUTION = 0.35, 0.25
LR_STAR, K_LR, K_WD = 5e-3, 0.08, 0.06


def train_tokens(params: dict) -> float:
    """T = E·U / (1 − r)."""
    return params["epochs"] * U / (1.0 - params["mix_ratio"])


def loss(params: dict) -> float:
    """Final target loss of a trial with these params (deterministic)."""
    e, r = params["epochs"], params["mix_ratio"]
    repeated = U + U * R_STAR * (1.0 - math.exp(-(e - 1.0) / R_STAR))
    aux = r * train_tokens(params)
    data_term = B / (repeated + TRANSFER * aux) ** BETA
    wd_star = 0.1 * e**0.7  # more repetition wants more decay
    bowls = K_LR * math.log10(params["learning_rate"] / LR_STAR) ** 2
    bowls += K_WD * math.log10(params["weight_decay"] / wd_star) ** 2
    return E0 + data_term + DILUTION * r**3 + bowls
