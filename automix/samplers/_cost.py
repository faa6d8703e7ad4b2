"""Cost-aware sampling: expected improvement per token, cooled (`costei`, `costtrend`).

automix knows what a suggestion costs before it trains (T = E·U/(1−r), `trainer/budget.py`), and
on data-constrained surfaces the best point is among the most expensive ones (BENCHMARKS.md "Search
efficiency on the real task"). `costgp` and `costtpe` are Optuna's GP / TPE after a cheap start-up
(`CheapStartSampler`); `CostAwareSampler` (`costei`, `costtrend`) has its own model and acquisition.
scipy's Sobol sampler is imported where it is used: the config layer looks the names up here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import optuna
import optuna.distributions as od
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.trial import FrozenTrial, TrialState

from automix.protocol import REJECTED, TOKENS, trained_tokens
from automix.samplers._gp_model import fit_model, log_ei

MAX_ENUMERATED = 4096  # a finite space up to this size is scored point by point
N_SOBOL = 1024
N_LOCAL = 256


class Encoder:
    """Maps params to the unit cube and back: log scale for log distributions, steps and ints rounded.

    Args:
        space: The distributions; the cube's axes are their names, sorted.

    Example:
        ::

            import optuna
            from automix.samplers._cost import Encoder

            enc = Encoder({"epochs": optuna.distributions.IntDistribution(1, 32, log=True)})
            enc.decode(enc.encode({"epochs": 8}))  # {'epochs': 8}
    """

    def __init__(self, space: dict[str, od.BaseDistribution]):
        self.names = sorted(space)
        self.space = space

    def encode(self, params: dict) -> np.ndarray:
        """The params as a point of [0, 1]^d."""
        return np.array([self._to_unit(self.space[n], params[n]) for n in self.names])

    def decode(self, x: np.ndarray) -> dict:
        """The params of a point of [0, 1]^d, rounded to the distributions' steps."""
        return {n: self._from_unit(self.space[n], float(v)) for n, v in zip(self.names, x, strict=True)}

    @staticmethod
    def _to_unit(d: od.BaseDistribution, v) -> float:
        if isinstance(d, od.CategoricalDistribution):
            return d.choices.index(v) / max(1, len(d.choices) - 1)
        lo, hi, v = (math.log(d.low), math.log(d.high), math.log(v)) if d.log else (d.low, d.high, v)
        return 0.0 if hi == lo else (v - lo) / (hi - lo)

    @staticmethod
    def _from_unit(d: od.BaseDistribution, u: float):
        u = min(1.0, max(0.0, u))
        if isinstance(d, od.CategoricalDistribution):
            return d.choices[int(round(u * (len(d.choices) - 1)))]
        v = (
            math.exp(math.log(d.low) + u * (math.log(d.high) - math.log(d.low)))
            if d.log
            else d.low + u * (d.high - d.low)
        )
        step = getattr(d, "step", None)
        if step:
            v = d.low + round((v - d.low) / step) * step
        if isinstance(d, od.IntDistribution):
            return int(min(d.high, max(d.low, round(v))))
        return float(min(d.high, max(d.low, v)))

    def grid(self) -> list[dict] | None:
        """Every point of the space if it is finite and at most MAX_ENUMERATED points, else None."""
        axes = []
        for n in self.names:
            d = self.space[n]
            if isinstance(d, od.CategoricalDistribution):
                axes.append(list(d.choices))
            elif isinstance(d, od.IntDistribution):
                axes.append(sorted({self._from_unit(d, self._to_unit(d, v)) for v in range(d.low, d.high + 1, d.step)}))
            elif d.step:
                axes.append([d.low + i * d.step for i in range(int(round((d.high - d.low) / d.step)) + 1)])
            else:
                return None
            if math.prod(len(a) for a in axes) > MAX_ENUMERATED:
                return None
        points = [{}]
        for n, values in zip(self.names, axes, strict=True):
            points = [{**p, n: v} for p in points for v in values]
        return points


class CostAwareSampler(BaseSampler):
    """Cost-cooled expected improvement per token over a GP, optionally over a log-cost trend.

    The samplers `costei` (`trend=False`) and `costtrend` (`trend=True`). The first
    `n_startup_trials` suggestions are Sobol points from the cheapest part of the space (uniform
    random start-up points are dear on the real grid: BENCHMARKS.md "Cost-aware search"); then it
    fits its model (automix/samplers/_gp_model.py) to the COMPLETE trials and proposes the candidate
    with the highest log EI − α·log(cost / cheapest cost): EI per token while α = 1, cooled to plain
    EI as tokens are spent (α = 1 − spent / (cooling · the largest trial's cost); EI-cool, Lee et al.
    2020). Candidates: the whole space when it is a small finite grid, else Sobol points plus
    perturbations of the best trials, refined by a local random search.

    It learns from COMPLETE trials only: a pruned trial's last loss is a pessimistic early estimate
    that steered GP away from the best region (BENCHMARKS.md "Cost-aware search"), and a suggestion
    the searcher refused to train (`automix.protocol.REJECTED`) was never observed. A point already
    trained to its end, failed or running is never proposed again. The trend (`costtrend`) wins where
    the best point is the dearest and loses where the optimum is inside the box (BENCHMARKS.md "Cost trend").

    Args:
        search_space: The distributions (known before the first trial, so that it is cheap too;
            None: those every trial so far has had).
        cost: `cost(params)`, a suggestion's training tokens (None: every point costs the same:
            plain EI).
        seed: Seeds the Sobol designs and the candidates' perturbations: the same seed gives the
            same suggestions.
        n_startup_trials: Sobol points, from the cheapest `cheap_quantile` of the space's costs,
            before the model is fitted.
        cheap_quantile: The start-up points' cost is at most this quantile of the space's costs.
        cooling: The tokens, in units of the largest trial's cost, after which the acquisition is
            plain EI (0: plain EI throughout).
        min_alpha: A floor under the cost weight α.
        trend: Model a linear trend of the loss in log cost under the GP.

    Example:
        ::

            import math

            import optuna
            from automix.samplers import CostAwareSampler

            space = {
                "epochs": optuna.distributions.IntDistribution(1, 32, log=True),
                "mix_ratio": optuna.distributions.FloatDistribution(0.0, 0.75, step=0.05),
            }

            def tokens(params):  # T = E·U/(1 − r) with U = 100k
                return params["epochs"] * 1e5 / (1 - params["mix_ratio"])

            study = optuna.create_study(sampler=CostAwareSampler(space, cost=tokens, seed=0, trend=True))
            for _ in range(10):
                trial = study.ask(space)
                study.tell(trial, 1 + 2 / math.log(tokens(trial.params)))
    """

    def __init__(
        self,
        search_space: dict[str, od.BaseDistribution] | None = None,
        cost: Callable[[dict], float] | None = None,
        seed: int | None = None,
        n_startup_trials: int = 5,
        cheap_quantile: float = 0.25,
        cooling: float = 1.0,
        min_alpha: float = 0.0,
        trend: bool = False,
    ):
        self._cost_fn = cost
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._random = RandomSampler(seed=seed)
        self._n_startup = n_startup_trials
        self._cheap_quantile = cheap_quantile
        self._cooling = cooling
        self._min_alpha = min_alpha
        self._trend = trend
        self._fixed_space = dict(search_space) if search_space else None
        self._search_space = IntersectionSearchSpace()
        self._costs: dict[tuple, float] = {}
        self._theta: np.ndarray | None = None  # the last fit's GP hyperparameters: the next fit starts there

    def reseed_rng(self) -> None:
        """New random state (Optuna calls this in forked workers)."""
        self._rng = np.random.default_rng()
        self._random.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict[str, od.BaseDistribution]:
        """The given space, or the params every trial so far has had; without single-valued ones."""
        space = self._fixed_space or self._search_space.calculate(study)
        return {n: d for n, d in space.items() if not d.single()}

    def sample_independent(self, study, trial, param_name, param_distribution):
        """Params outside the relative space (first trial, conditional params) are random."""
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def cost(self, params: dict) -> float:
        """A point's cost (1 without a cost function), cached: the trainer's cost builds a config."""
        if self._cost_fn is None:
            return 1.0
        key = tuple(sorted(params.items()))
        if key not in self._costs:
            self._costs[key] = max(float(self._cost_fn(params)), 1e-12)
        return self._costs[key]

    def sample_relative(self, study, trial, search_space) -> dict:
        """The next point: a cheap Sobol point during start-up, then the best cooled EI per token."""
        if not search_space or len(study.directions) > 1:
            return {}
        enc = Encoder(search_space)
        # A failed point is taken too: the trainer is deterministic, so it would fail again (a crashed
        # trial is re-queued by the searcher, automix/scheduling/_searcher.py, not re-proposed here).
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.FAIL)
        trials = study.get_trials(deepcopy=False, states=states)
        # Observations: finished, finite losses; never a suggestion the searcher refused to train
        # (`REJECTED`), whatever state it is recorded in.
        done = [t for t in trials if t.state == TrialState.COMPLETE and _observed(t, enc) and math.isfinite(t.value)]
        taken = {_key(t.params, enc) for t in trials if t.state != TrialState.PRUNED and _has(t, enc)}
        taken.discard(_key(trial.params, enc))  # the asking trial itself is RUNNING
        reference = enc.grid() or [enc.decode(u) for u in self._sobol(len(enc.names), N_SOBOL)]
        if len(done) < max(self._n_startup, 2):
            return self._startup(enc, reference, taken)
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
        return self._acquire(enc, reference, done, taken, sign, _spent(trials, self))

    def _sobol(self, d: int, n: int) -> np.ndarray:
        from scipy.stats import qmc

        return qmc.Sobol(d, scramble=True, seed=self._seed).random(n)

    def _startup(self, enc: Encoder, reference: list[dict], taken: set) -> dict:
        """The first untaken Sobol point (in the seed's order) within the cheap part of the space."""
        threshold = np.quantile([self.cost(p) for p in reference], self._cheap_quantile)
        for u in self._sobol(len(enc.names), N_SOBOL):
            params = enc.decode(u)
            if self.cost(params) <= threshold and _key(params, enc) not in taken:
                return params
        cheap = [p for p in reference if self.cost(p) <= threshold and _key(p, enc) not in taken]
        return cheap[self._rng.integers(len(cheap))] if cheap else {}

    def _candidates(self, enc: Encoder, reference: list[dict], done: list[FrozenTrial], sign: float) -> list[dict]:
        """The finite space itself, or fresh Sobol points plus perturbations of the 5 best trials."""
        if enc.grid() is not None:
            return reference
        from scipy.stats import qmc

        d = len(enc.names)
        points = list(qmc.Sobol(d, scramble=True, seed=self._rng).random(N_SOBOL))
        best = sorted(done, key=lambda t: sign * t.value)[:5]
        for t in best:
            centre = enc.encode(t.params)
            for scale in (0.03, 0.1):
                points.extend(np.clip(centre + scale * self._rng.standard_normal((N_LOCAL // 10, d)), 0, 1))
        return [enc.decode(u) for u in points]

    def _acquire(self, enc, reference, done, taken, sign: float, spent: float) -> dict:
        """The candidate with the highest log EI − α·log(cost / cheapest cost), refined locally."""
        all_costs = np.log([self.cost(p) for p in reference])
        lo, span = all_costs.min(), max(all_costs.max() - all_costs.min(), 1e-12)
        trend_x = (np.log([self.cost(t.params) for t in done]) - lo) / span if self._trend else np.zeros(len(done))
        y = np.array([sign * t.value for t in done])
        predict, self._theta = fit_model(np.array([enc.encode(t.params) for t in done]), y, trend_x, self._theta)
        alpha = max(0.0, 1.0 - spent / (self._cooling * math.exp(all_costs.max()))) if self._cooling else 0.0
        alpha = max(alpha, self._min_alpha)

        def score(points: list[dict]) -> np.ndarray:
            log_cost = np.log([self.cost(p) for p in points])
            trend = (log_cost - lo) / span if self._trend else np.zeros(len(points))
            mean, std = predict(np.array([enc.encode(p) for p in points]), trend)
            value = log_ei(mean, std, y.min()) - alpha * (log_cost - lo)
            return np.where([_key(p, enc) in taken for p in points], -np.inf, value)

        candidates = self._candidates(enc, reference, done, sign)
        values = score(candidates)
        if not np.isfinite(values).any():
            return {}
        if enc.grid() is not None:
            return candidates[int(np.argmax(values))]
        return self._refine(enc, score, [candidates[i] for i in np.argsort(-values)[:5]])

    def _refine(self, enc: Encoder, score, starts: list[dict]) -> dict:
        """Local random search around the best candidates at shrinking scales (the acquisition's
        optimum is narrow once the model is sure: Sobol points alone land too far from it)."""
        best = list(starts)
        best_values = score(best)
        for scale in (0.05, 0.015, 0.005):
            for i, centre in enumerate(best):
                u = enc.encode(centre)
                trial = [enc.decode(v) for v in np.clip(u + scale * self._rng.standard_normal((32, len(u))), 0, 1)]
                values = score(trial)
                if values.max() > best_values[i]:
                    best[i], best_values[i] = trial[int(np.argmax(values))], values.max()
        return best[int(np.argmax(best_values))]


def _has(trial: FrozenTrial, enc: Encoder) -> bool:
    return all(n in trial.params for n in enc.names)


def _observed(trial: FrozenTrial, enc: Encoder) -> bool:
    return _has(trial, enc) and REJECTED not in trial.user_attrs


def _key(params: dict, enc: Encoder) -> tuple:
    """A point's identity, rounded so that a decoded point matches the trial it came from."""
    return tuple(np.round(enc.encode(params), 9)) if all(n in params for n in enc.names) else ()


def _spent(trials: list[FrozenTrial], sampler: CostAwareSampler) -> float:
    """Tokens trained so far: what a trial recorded (`trained_tokens`), else its cost if it completed."""
    total = 0.0
    for t in trials:
        if t.state == TrialState.COMPLETE:
            total += trained_tokens(t.user_attrs) if TOKENS in t.user_attrs else sampler.cost(t.params)
        elif t.state == TrialState.PRUNED:
            total += trained_tokens(t.user_attrs)
    return total
