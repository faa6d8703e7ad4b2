"""Effective-data multiplier: how much more unique target data the mixed run is worth.

Reference runs train on the target alone (r = 0) with tuned settings at several U. A curve
metric(U) is fitted to them (`fit_curve`: Muennighoff et al. 2023's data-constrained form) and
inverted at the mixed run's score: multiplier = U_equivalent / U, with a bootstrap interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import curve_fit

from automix.analysis._readback import load_study_data
from automix.analysis._reruns import settings_config, train_many, with_seed
from automix.config._study import StudyConfig
from automix.errors import ConfigError
from automix.study._workspace import Workspace

R_STAR = 15.4  # Muennighoff et al. 2023: repeated epochs' value decays with this timescale


def effective_data(unique: np.ndarray, epochs: np.ndarray, r_star: float = R_STAR) -> np.ndarray:
    """D': tokens seen once count fully, repeats count less and less (E < 1 counts only what was seen)."""
    unique, epochs = np.asarray(unique, float), np.asarray(epochs, float)
    repeats = np.maximum(epochs - 1.0, 0.0)
    return unique * np.minimum(epochs, 1.0) + unique * r_star * (1.0 - np.exp(-repeats / r_star))


@dataclass
class Fit:
    """metric = a + b·(D'/d0)^(−beta) (`power`) or a + b·ln(D'/d0) (`loglinear`)."""

    kind: str
    a: float
    b: float
    beta: float
    d0: float

    def predict(self, d: np.ndarray) -> np.ndarray:
        """The fitted metric at effective data `d`."""
        x = np.asarray(d, float) / self.d0
        return self.a + self.b * (x ** (-self.beta) if self.kind == "power" else np.log(x))

    def invert(self, y: float) -> float:
        """The effective data at which the curve reaches `y`; inf past the asymptote, nan if unreachable."""
        if self.kind == "loglinear":
            return self.d0 * math.exp((y - self.a) / self.b) if self.b else math.nan
        ratio = (y - self.a) / self.b
        if ratio <= 0:
            return math.inf  # beyond what any amount of target data reaches on this curve
        return self.d0 * ratio ** (-1.0 / self.beta)


def fit_curve(d: np.ndarray, y: np.ndarray) -> Fit:
    """Fit the power form to (D', metric) points, or the log-linear form when data are thin.

    Repeated data counts as D' = U + U·R*·(1 − exp(−(E − 1)/R*)) effective tokens (`effective_data`),
    and metric = a + b·(D'/D0)^(−β) (a loss falls, b > 0; an accuracy rises, b < 0). When every
    reference run has the same E, D' is a fixed multiple of U and R* cancels out of the multiplier.
    With fewer than four distinct U (or a failed fit) the fit is log-linear: a + b·ln(D'/D0).
    """
    d, y = np.asarray(d, float), np.asarray(y, float)
    d0 = float(np.exp(np.mean(np.log(d))))  # scale D' to ~1: the fit is well conditioned
    x = d / d0
    slope, intercept = np.polyfit(np.log(x), y, 1)
    loglinear = Fit("loglinear", float(intercept), float(slope), 0.0, d0)
    if len(np.unique(d)) < 4:
        return loglinear
    sign = -1.0 if slope < 0 else 1.0  # a falling metric has b > 0 in a + b·x^-β
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (a, b, beta), _ = curve_fit(
                lambda x, a, b, beta: a + b * x ** (-beta),
                x,
                y,
                p0=(float(y.mean()) + sign * abs(slope), -sign * abs(slope), 0.5),
                bounds=([-np.inf, -np.inf, 1e-3], [np.inf, np.inf, 5.0]),
                maxfev=20000,
            )
    except (RuntimeError, ValueError):
        return loglinear
    return Fit("power", float(a), float(b), float(beta), d0)


def multiplier(fit: Fit, score: float, unique: float, epochs: float) -> float:
    """U_equivalent / U: the target-only data at `epochs` that reaches `score`, over the mixed run's U."""
    d_per_u = float(effective_data(np.array([1.0]), np.array([epochs]))[0])
    return fit.invert(score) / d_per_u / unique


@dataclass
class MultiplierEstimate:
    """The point estimate, its bootstrap interval and how many resamples failed to invert."""

    metric: str
    fit: Fit
    score: float
    multiplier: float
    low: float
    high: float
    n_boot: int
    n_failed: int


def estimate(
    metric: str,
    units: Sequence[float],
    epochs: Sequence[float],
    values: Sequence[float],
    mixed_scores: Sequence[float],
    unique: float,
    ref_epochs: float,
    n_boot: int = 1000,
    seed: int = 0,
) -> MultiplierEstimate:
    """Fit the reference points, invert at the mean mixed score, bootstrap a 95% interval.

    Each resample redraws the reference points and the mixed run's seeds with replacement.
    """
    d = effective_data(np.asarray(units), np.asarray(epochs))
    y, mixed = np.asarray(values, float), np.asarray(mixed_scores, float)
    fit = fit_curve(d, y)
    point = multiplier(fit, float(mixed.mean()), unique, ref_epochs)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(d[idx])) < 2:
            continue
        score = float(rng.choice(mixed, len(mixed)).mean())
        boots.append(multiplier(fit_curve(d[idx], y[idx]), score, unique, ref_epochs))
    boots = np.array(boots)
    ok = boots[np.isfinite(boots)]
    low, high = np.percentile(ok, [2.5, 97.5]) if len(ok) else (math.nan, math.nan)
    return MultiplierEstimate(
        metric, fit, float(mixed.mean()), point, float(low), float(high), len(boots), int(len(boots) - len(ok))
    )


def to_json(estimates: list[MultiplierEstimate], points: dict[str, Any]) -> dict[str, Any]:
    """The estimates (with their fits) and the points they came from, as plain JSON."""
    return {"points": points, "estimates": [asdict(e) for e in estimates]}


def plot_multiplier(result: dict[str, Any]):
    """Per metric: reference points and fitted curve against U, the mixed score and its U_equivalent."""
    import matplotlib.pyplot as plt

    points, estimates = result["points"], result["estimates"]
    fig, axes = plt.subplots(1, len(estimates), figsize=(5 * len(estimates), 3.8), squeeze=False)
    units = np.array(points["reference"]["unique_tokens"], float)
    ref_epochs = points["reference"]["epochs_at"]
    d_per_u = float(effective_data(np.array([1.0]), np.array([ref_epochs]))[0])
    grid = np.geomspace(units.min() / 1.5, units.max() * 4, 200)
    for ax, est in zip(axes[0], estimates, strict=True):
        fit = Fit(**est["fit"])
        ax.scatter(units, points["reference"][est["metric"]], color="#4c72b0", label="target only (r = 0)")
        ax.plot(grid, fit.predict(grid * d_per_u), color="#4c72b0", alpha=0.7, label=f"{fit.kind} fit")
        u0 = points["mixed"]["unique_tokens"]
        ax.scatter([u0] * len(points["mixed"][est["metric"]]), points["mixed"][est["metric"]], color="#dd8452")
        ax.axhline(est["score"], color="#dd8452", linestyle="--", label="mixed run (mean over seeds)")
        u_eq = est["multiplier"] * u0
        if np.isfinite(u_eq):
            ax.axvline(u_eq, color="grey", linestyle=":", label=f"U_eq = {est['multiplier']:.2f} × U")
        ax.set_xscale("log")
        ax.set_xlabel("unique target tokens U")
        ax.set_ylabel(est["metric"])
        ax.set_title(
            f"{est['metric']}: ×{est['multiplier']:.2f} [{est['low']:.2f}, {est['high']:.2f}] (95% bootstrap)",
            fontsize=9,
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def measure(
    config: StudyConfig,
    reference: StudyConfig,
    units: Sequence[int],
    seeds: Sequence[int],
    workers: int = 1,
    metrics: Sequence[str] = ("target_val_loss", "target_acc"),
) -> dict[str, Any]:
    """Train the reference curve and the mixed run's seeds, then estimate the multiplier per metric.

    The mixed run is the best trial of `config`'s study; the reference settings are the best of
    `reference`'s study with r = 0 (a tune-only study is the right reference), trained at each U.
    The interval is a bootstrap over the reference points and the mixed run's seeds.
    """
    if any(u <= config.data.seq_len for u in units) or len(set(units)) < 2:
        raise ConfigError(f"--units needs at least two distinct values above seq_len, got {list(units)}")
    mixed_best, ref_best = (_best(c) for c in (config, reference))
    mixed = settings_config(config, mixed_best.params)
    refs = [
        with_seed(settings_config(reference, ref_best.params, mix_ratio=0.0, unique_tokens=int(u)), s)
        for u in units
        for s in seeds
    ]
    ref_metrics = train_many(refs, Workspace.from_config(reference).path("reruns"), workers)
    reruns = Workspace.from_config(config).path("reruns")
    mixed_metrics = train_many([with_seed(mixed, s) for s in seeds], reruns, workers)
    points = {
        "reference": {
            "study": reference.study,
            "best_trial": ref_best.number,
            "unique_tokens": [c.budget.unique_tokens for c in refs],
            "epochs": [c.budget.effective_epochs for c in refs],
            "epochs_at": refs[0].budget.effective_epochs,
            "seed": [c.seed for c in refs],
            **{m: [r.get(m) for r in ref_metrics] for m in metrics},
        },
        "mixed": {
            "study": config.study,
            "best_trial": mixed_best.number,
            "unique_tokens": mixed.budget.unique_tokens,
            "mix_ratio": mixed.budget.mix_ratio,
            "epochs": mixed.budget.effective_epochs,
            "seed": list(seeds),
            **{m: [r.get(m) for r in mixed_metrics] for m in metrics},
        },
    }
    estimates = [
        estimate(
            m,
            points["reference"]["unique_tokens"],
            points["reference"]["epochs"],
            points["reference"][m],
            points["mixed"][m],
            mixed.budget.unique_tokens,
            points["reference"]["epochs_at"],
        )
        for m in metrics
        if None not in points["reference"][m] + points["mixed"][m]
    ]
    return to_json(estimates, points)


def _best(config: StudyConfig):
    best = load_study_data(config).best()
    if best is None:
        raise ConfigError(f"study '{config.study}' has no completed trial: run or finish its search first")
    return best
