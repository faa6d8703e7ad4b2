"""Synthetic loss surfaces shaped like a data-constrained scaling law over (lr, wd, E, r).

Used to benchmark samplers where the optimum is known and a trial costs nothing but arithmetic.
Shape (Muennighoff et al. 2023, plus mixing and hyperparameter bowls):
- repeated target data is worth less each epoch: D' = U + U·R*·(1 − e^(−(E−1)/R*));
- auxiliary tokens r·T help with a transfer efficiency c, and dilute the target when r is high;
- the loss is E0 + B / (D' + c·r·T)^β, plus log-quadratic bowls around the best lr and around a
  best weight decay that grows with repetition (the two levers interact; docs/design.md "Search").

A default chosen on one surface need not carry to another, so there are several (`SURFACES`): the
one the samplers were first measured on, and variants whose optimum sits elsewhere in the space
(cheap or dear, mixing useful or not, narrow or wide bowls).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Surface:
    """One data-constrained loss surface; `loss(params)` is a trial's final loss, `train_tokens` its cost."""

    unique: float = 100_000  # U, unique target tokens
    r_star: float = 15.0  # repetitions after which more epochs stop adding value
    e0: float = 1.0
    b: float = 60.0
    beta: float = 0.38
    transfer: float = 0.35  # worth of an auxiliary token relative to a fresh target token
    dilution: float = 0.25  # penalty on a high mixing ratio: r³ times this
    lr_star: float = 5e-3
    k_lr: float = 0.08  # width of the learning-rate bowl (per decade²)
    k_wd: float = 0.06
    wd_growth: float = 0.7  # best weight decay = 0.1 · E^wd_growth
    diverge_lr: float = math.inf  # above this lr (halved per decade of weight decay below 0.1) training diverges
    diverged: float = 7.0  # the loss of a diverged run: about log(vocabulary size), or NaN
    noise: float = 0.0  # std of seed noise on the loss, a fixed draw per point (the same params, the same loss)
    stable_gap: float = 0.06  # learning curves: excess loss at the stable lr, removed by the final decay
    decay_frac: float = 0.2  # learning curves: the last share of a run, where the lr decays linearly to 0

    def train_tokens(self, params: dict) -> float:
        """T = E·U / (1 − r)."""
        return params["epochs"] * self.unique / (1.0 - params["mix_ratio"])

    def loss(self, params: dict) -> float:
        """Final target loss of a trial with these params (deterministic)."""
        e, r = params["epochs"], params["mix_ratio"]
        repeated = self.unique + self.unique * self.r_star * (1.0 - math.exp(-(e - 1.0) / self.r_star))
        aux = r * self.train_tokens(params)
        data_term = self.b / (repeated + self.transfer * aux) ** self.beta
        wd_star = 0.1 * e**self.wd_growth
        bowls = self.k_lr * math.log10(params["learning_rate"] / self.lr_star) ** 2
        bowls += self.k_wd * math.log10(params["weight_decay"] / wd_star) ** 2
        limit = self.diverge_lr * min(1.0, params["weight_decay"] / 0.1) ** 0.3
        if params["learning_rate"] > limit:
            return self.diverged
        return self.e0 + data_term + self.dilution * r**3 + bowls + self.noise * _draw(params)

    def data_term(self, target_epochs: float, aux_tokens: float) -> float:
        """B / (D' + c·aux)^β after `target_epochs` passes over U (fresh data up to 1) and `aux_tokens`."""
        e = target_epochs
        if e <= 1.0:
            repeated = e * self.unique  # the first pass is all fresh data
        else:
            repeated = self.unique + self.unique * self.r_star * (1.0 - math.exp(-(e - 1.0) / self.r_star))
        return self.b / (repeated + self.transfer * aux_tokens) ** self.beta

    def loss_at(self, params: dict, tokens: float) -> float:
        """Target loss after `tokens` of a run of T = train_tokens(params) tokens (see `curve`)."""
        final = self.loss(params)
        total = self.train_tokens(params)
        if tokens >= total or not math.isfinite(final) or final == self.diverged:
            return final
        e, r = params["epochs"], params["mix_ratio"]
        seen = self.data_term((1.0 - r) * tokens / self.unique, r * tokens) - self.data_term(e, r * total)
        decayed = min(1.0, max(0.0, (tokens / total - (1.0 - self.decay_frac)) / self.decay_frac))
        return final + seen + self.stable_gap * (1.0 - decayed)

    def curve(self, params: dict, eval_every: float) -> list[tuple[float, float]]:
        """A trial's learning curve: [(tokens, loss)] at every `eval_every` tokens below T, then at T.

        The last entry is exactly `loss(params)`. At t < T tokens the data term counts only the data
        seen so far, (1 − r)·t target tokens (e_t = (1 − r)·t/U epochs, through the same repetition
        formula) and r·t auxiliary ones; the bowls and the dilution are those of the finished run;
        and until the lr decay (the last `decay_frac` of the run, warmup-stable-decay) the loss sits
        `stable_gap` higher, a gap the decay removes linearly. So, as in the real trainer, at equal
        tokens a mixed run (less target data so far) and a long run (still at its stable lr) look
        worse than they finish: stopping trials by comparing them at equal tokens is biased against
        the points that end best. A diverged point reports its diverged loss (or NaN) from the first
        evaluation on.
        """
        total = self.train_tokens(params)
        marks = [eval_every * k for k in range(1, math.ceil(total / eval_every)) if eval_every * k < total]
        return [*((t, self.loss_at(params, t)) for t in marks), (total, self.loss(params))]


def _draw(params: dict) -> float:
    """A standard normal draw fixed by the params: a deterministic stand-in for seed noise."""
    key = repr(sorted((k, round(float(v), 9)) for k, v in params.items())).encode()
    rng = random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
    return rng.gauss(0.0, 1.0)


SURFACES = {
    # the surface of BENCHMARKS.md's first sampler tables: the optimum at high E and r (dear points)
    "paper": Surface(),
    # little data, repetition saturates after ~4 epochs, mixing transfers well: best at mid E, high r
    "scarce": Surface(unique=25_000, r_star=4.0, transfer=0.6, dilution=0.15),
    # the auxiliary language barely helps and dilutes: best at r = 0, tuning is the lever
    "no_mix": Surface(transfer=0.03, dilution=0.6, k_wd=0.15, wd_growth=1.0),
    # narrow bowls around a low lr and a decay that grows slowly: the hyperparameters matter most
    "sharp": Surface(lr_star=1.5e-3, k_lr=0.3, k_wd=0.2, wd_growth=0.3, r_star=8.0),
    # training diverges (loss ≈ log vocabulary) above an lr near the best one: a cliff next to the optimum
    "cliff": Surface(diverge_lr=8e-3),
    # the same cliff, but a diverged run's loss is NaN: automix records the trial FAIL
    "nan_cliff": Surface(diverge_lr=8e-3, diverged=math.nan),
    # seed noise of 0.01 nats (what RESULTS.md measures between seeds of one config is larger)
    "noisy": Surface(noise=0.01),
}
DEFAULT = SURFACES["paper"]
train_tokens = DEFAULT.train_tokens
loss = DEFAULT.loss
