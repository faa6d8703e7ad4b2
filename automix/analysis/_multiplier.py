"""Effective-data multiplier: how much more unique target data the mixed lever is worth.

Reference runs train on the target alone (r = 0) at several U, each U with the best of a grid of
recipes around the reference study's best (a recipe tuned at one U is off at another, and an
un-tuned reference inflates the multiplier). A curve metric(U) is fitted to them (`fit_curve`) and
inverted at the mixed lever's score, the mean of its searches' bests re-trained from seeds:
multiplier = U_equivalent / U, with a bootstrap interval over seeds, searches and the reference's
selection (`estimate`).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import curve_fit

from automix.analysis._compare import common_budget
from automix.analysis._readback import load_study_data
from automix.analysis._reruns import settings_config, train_many, with_seed
from automix.config._study import StudyConfig
from automix.errors import ConfigError
from automix.study._workspace import Workspace
from trainer.config import TrainConfig

RETUNE = {"weight_decay": "optim", "learning_rate": "optim", "epochs": "budget"}  # key: its config section


@dataclass
class Fit:
    """metric = a + b·(U/u0)^(−beta) (`power`) or a + b·ln(U/u0) (`loglinear`), U unique target tokens."""

    kind: str
    a: float
    b: float
    beta: float
    u0: float

    def predict(self, u: np.ndarray) -> np.ndarray:
        """The fitted metric at `u` unique tokens."""
        x = np.asarray(u, float) / self.u0
        return self.a + self.b * (x ** (-self.beta) if self.kind == "power" else np.log(x))

    def invert(self, y: float) -> float:
        """The U at which the curve reaches `y`; inf past the asymptote, nan if unreachable."""
        if self.kind == "loglinear":
            return self.u0 * math.exp((y - self.a) / self.b) if self.b else math.nan
        ratio = (y - self.a) / self.b
        if ratio <= 0:
            return math.inf  # beyond what any amount of target data reaches on this curve
        return self.u0 * ratio ** (-1.0 / self.beta)


def fit_curve(u: np.ndarray, y: np.ndarray) -> Fit:
    """Fit metric = a + b·(U/U0)^(−β) to tuned target-only points, or a + b·ln(U/U0) when data are thin.

    A loss falls (b > 0), an accuracy rises (b < 0). The abscissa is U itself, not Muennighoff et
    al.'s (2023) effective data D': at one E, D' is a fixed multiple of U and cancels out of the
    multiplier; where E or T changes with U (re-tuned epochs, fixed_tokens mode) the question is how
    much tuned target-only data reaches a score, a function of U. With fewer than four distinct U (or
    a failed fit) the fit is log-linear.
    """
    u, y = np.asarray(u, float), np.asarray(y, float)
    u0 = float(np.exp(np.mean(np.log(u))))  # scale U to ~1: the fit is well conditioned
    x = u / u0
    slope, intercept = np.polyfit(np.log(x), y, 1)
    loglinear = Fit("loglinear", float(intercept), float(slope), 0.0, u0)
    if len(np.unique(u)) < 4:
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
    return Fit("power", float(a), float(b), float(beta), u0)


def select(runs: np.ndarray, lower_is_better: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per U, the grid point with the best seed mean and that mean; `runs` is U × grid × seeds."""
    means = np.asarray(runs, float).mean(axis=2)
    chosen = (np.argmin if lower_is_better else np.argmax)(means, axis=1)
    return chosen, np.take_along_axis(means, chosen[:, None], axis=1)[:, 0]


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
    reference_runs: np.ndarray,
    mixed_runs: np.ndarray,
    unique: float,
    lower_is_better: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> MultiplierEstimate:
    """Fit the re-tuned reference, invert it at the mean mixed score, bootstrap a 95% interval.

    Each resample redraws the seeds of every (U, grid point) with replacement and picks the best
    grid point per U again, so the reference's selection is inside the interval; on the mixed side
    it redraws the searches, then the seeds within each drawn search, so search-to-search variation
    is in it too. Picking the best of a grid on seed means favours the reference a little (the
    winner's curse: the chosen mean is partly luck), which makes the multiplier conservative.

    Args:
        metric: the metric's name, kept in the result.
        units: the reference's U, one per row of `reference_runs`.
        reference_runs: U × grid × seeds target-only results.
        mixed_runs: searches × seeds: each mixed search's best re-trained from the seeds.
        unique: U of the mixed runs.
        lower_is_better: a loss (True) or an accuracy (False): which grid point wins at a U.
        n_boot: bootstrap resamples.
        seed: the bootstrap's seed.

    Returns:
        The fit, the mean mixed score, U_equivalent / U and its 2.5 and 97.5 percentiles over the
        resamples that inverted to a finite value (``n_failed`` did not).
    """
    u = np.asarray(units, float)
    ref, mixed = np.asarray(reference_runs, float), np.asarray(mixed_runs, float)
    score = float(mixed.mean())
    fit = fit_curve(u, select(ref, lower_is_better)[1])
    rng = np.random.default_rng(seed)
    boots = np.array([_resample(u, ref, mixed, lower_is_better, rng) for _ in range(n_boot)]) / unique
    ok = boots[np.isfinite(boots)]
    low, high = np.percentile(ok, [2.5, 97.5]) if len(ok) else (math.nan, math.nan)
    point = fit.invert(score) / unique
    return MultiplierEstimate(metric, fit, score, point, float(low), float(high), n_boot, int(n_boot - len(ok)))


def _resample(u: np.ndarray, ref: np.ndarray, mixed: np.ndarray, lower_is_better: bool, rng) -> float:
    """U_equivalent of one bootstrap draw: seeds redrawn per (U, grid point); searches, then seeds."""
    ref = np.take_along_axis(ref, rng.integers(0, ref.shape[2], ref.shape), axis=2)
    mixed = mixed[rng.integers(0, mixed.shape[0], mixed.shape[0])]
    mixed = np.take_along_axis(mixed, rng.integers(0, mixed.shape[1], mixed.shape), axis=1)
    return fit_curve(u, select(ref, lower_is_better)[1]).invert(float(mixed.mean()))


def to_json(estimates: list[MultiplierEstimate], points: dict[str, Any]) -> dict[str, Any]:
    """The estimates (with their fits) and the points they came from, as plain JSON."""
    return {"points": points, "estimates": [asdict(e) for e in estimates]}


def plot_multiplier(result: dict[str, Any]):
    """Per metric: the chosen reference means and fitted curve against U, the mixed re-runs and U_equivalent."""
    import matplotlib.pyplot as plt

    ref, mixed, estimates = result["points"]["reference"], result["points"]["mixed"], result["estimates"]
    fig, axes = plt.subplots(1, len(estimates), figsize=(5 * len(estimates), 3.8), squeeze=False)
    units = np.array(ref["unique_tokens"], float)
    grid = np.geomspace(units.min() / 1.5, units.max() * 4, 200)
    for ax, est in zip(axes[0], estimates, strict=True):
        metric, fit = est["metric"], Fit(**est["fit"])
        if len(ref["grid"]) > 1:
            means = np.array(ref["runs"][metric], float).mean(axis=2)
            ax.scatter(np.repeat(units, means.shape[1]), means.ravel(), color="#c0c0c0", s=10, label="grid points")
        ax.scatter(units, ref[metric], color="#4c72b0", label="target only (r = 0), best of grid")
        ax.plot(grid, fit.predict(grid), color="#4c72b0", alpha=0.7, label=f"{fit.kind} fit")
        u0, runs = mixed["unique_tokens"], np.ravel(mixed[metric])
        ax.scatter([u0] * len(runs), runs, color="#dd8452", s=14)
        ax.axhline(est["score"], color="#dd8452", linestyle="--", label="mixed (mean over searches × seeds)")
        u_eq = est["multiplier"] * u0
        if np.isfinite(u_eq):
            ax.axvline(u_eq, color="grey", linestyle=":", label=f"U_eq = {est['multiplier']:.2f} × U")
        ax.set_xscale("log")
        ax.set_xlabel("unique target tokens U")
        ax.set_ylabel(metric)
        ax.set_title(
            f"{metric}: ×{est['multiplier']:.2f} [{est['low']:.2f}, {est['high']:.2f}] (95% bootstrap)", fontsize=9
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def measure(
    configs: StudyConfig | Sequence[StudyConfig],
    reference: StudyConfig,
    units: Sequence[int],
    seeds: Sequence[int],
    workers: int = 1,
    metrics: Sequence[str] = ("target_val_loss", "target_acc"),
    retune: dict[str, Sequence[float]] | None = None,
    holdout_seeds: Sequence[int] = (),
) -> dict[str, Any]:
    """Train the re-tuned reference curve and the mixed searches' bests, then estimate the multiplier.

    The reference recipe is the best of `reference`'s study at r = 0 (a tune-only study is the
    right reference). At each U every point of the `retune` grid is trained from every seed, and the
    grid point with the best seed mean is that U's reference point (`estimate`: chosen per metric,
    and chosen again in every bootstrap draw). That choice favours the reference a little (winner's
    curse), so the multiplier is conservative. In fixed_tokens mode T stays and E = T/U follows (a
    reference at the mixed runs' T is at their compute); in epochs mode E stays. Runs are cached in
    each study's ``WORK/reruns``.

    Args:
        configs: one study of the mixed (joint) lever, or several independent searches of it at one
            budget; each search's best is re-trained from `seeds`.
        reference: the study whose best settings, at r = 0, make the target-only curve.
        units: the reference's U, at least two distinct values above ``data.seq_len``.
        seeds: trainer seeds of every re-run.
        workers: runs trained at once, one thread each.
        metrics: final metrics to estimate a multiplier on (``*_acc``: higher is better); one with a
            missing value in any run is left out of the estimates.
        retune: factors on the reference best's settings, e.g. ``{"weight_decay": [1/3, 1, 3],
            "learning_rate": [0.5, 1, 2]}``; every combination is a grid point. Keys: weight_decay,
            learning_rate, epochs (not in fixed_tokens mode). None: the best's recipe alone.
        holdout_seeds: seeds no choice saw; each U's chosen point is re-trained from them, a check
            on the winner's curse beside the estimate (which the choosing seeds make).

    Returns:
        ``{"points", "estimates"}``. ``points["reference"]``: study, best_trial, unique_tokens (per
        U), grid (per point: its factors and its weight_decay and learning_rate), epochs and
        train_tokens (U × grid), runs ({metric: U × grid × seeds}), chosen ({metric: grid index per
        U}) and per metric the chosen seed means per U; with `holdout_seeds`, ``holdout`` ({metric: the
        chosen point's held-out runs per U}) and ``holdout_seed``. ``points["mixed"]``: studies, best_trials,
        mix_ratio, epochs and train_tokens (per search), unique_tokens, seed, and per metric the
        re-runs as searches × seeds. ``estimates``: one `MultiplierEstimate` per metric, as a dict.

    Raises:
        ConfigError: if the searches' budgets differ, the reference's compute differs from theirs,
            `units` or `retune` is invalid, a held-out seed is also in `seeds`, or a study has no
            completed trial.

    Example:
        >>> result = measure(  # doctest: +SKIP
        ...     [load_config(p) for p in joint_paths], load_config("tune_only.yaml"), [25_000, 50_000, 100_000],
        ...     seeds=[1, 2, 3], retune={"weight_decay": [1 / 3, 1, 3], "learning_rate": [0.5, 1, 2]},
        ... )
        >>> [(e["metric"], e["multiplier"], e["low"], e["high"]) for e in result["estimates"]]  # doctest: +SKIP
    """
    configs = [configs] if isinstance(configs, StudyConfig) else list(configs)
    _check(configs, reference, units, retune or {}, set(seeds) & set(holdout_seeds))
    grid = [dict(zip(retune, f, strict=True)) for f in itertools.product(*retune.values())] if retune else [{}]
    ref_best, mixed_bests = _best(reference), [_best(c) for c in configs]
    refs = [
        [_scaled(settings_config(reference, ref_best.params, mix_ratio=0.0, unique_tokens=int(u)), f) for f in grid]
        for u in units
    ]
    mixed = [settings_config(c, b.params) for c, b in zip(configs, mixed_bests, strict=True)]
    jobs = [with_seed(c, s) for c in [*itertools.chain(*refs), *mixed] for s in seeds]
    dirs = [Workspace.from_config(c).path("reruns") for c in [reference] * len(units) * len(grid) + configs]
    results = train_many(jobs, [d for d in dirs for _ in seeds], workers)
    n_ref = len(units) * len(grid) * len(seeds)
    ref_runs = _nest(results[:n_ref], metrics, (len(units), len(grid), len(seeds)))
    mixed_runs = _nest(results[n_ref:], metrics, (len(configs), len(seeds)))
    complete = [m for m in metrics if None not in [*np.ravel(ref_runs[m]), *np.ravel(mixed_runs[m])]]
    picked = {m: select(np.array(ref_runs[m], float), _lower_is_better(m)) for m in complete}
    holdout = _holdout(refs, picked, holdout_seeds, Workspace.from_config(reference).path("reruns"), workers)
    points = {
        "reference": {
            "study": reference.study,
            "best_trial": ref_best.number,
            "unique_tokens": [int(u) for u in units],
            "grid": [
                {"factors": f, "weight_decay": c.optim.weight_decay, "learning_rate": c.optim.learning_rate}
                for f, c in zip(grid, refs[0], strict=True)
            ],
            "epochs": [[c.budget.effective_epochs for c in row] for row in refs],
            "train_tokens": [[c.budget.total_tokens for c in row] for row in refs],
            "runs": ref_runs,
            "chosen": {m: picked[m][0].tolist() for m in complete},
            **{m: picked[m][1].tolist() for m in complete},
            **({"holdout": holdout, "holdout_seed": list(holdout_seeds)} if holdout_seeds else {}),
        },
        "mixed": {
            "studies": [c.study for c in configs],
            "best_trials": [b.number for b in mixed_bests],
            "unique_tokens": mixed[0].budget.unique_tokens,
            "mix_ratio": [c.budget.mix_ratio for c in mixed],
            "epochs": [c.budget.effective_epochs for c in mixed],
            "train_tokens": [c.budget.total_tokens for c in mixed],
            "seed": list(seeds),
            **mixed_runs,
        },
    }
    unique = mixed[0].budget.unique_tokens
    estimates = [
        estimate(m, units, np.array(ref_runs[m], float), np.array(mixed_runs[m], float), unique, _lower_is_better(m))
        for m in complete
    ]
    return to_json(estimates, points)


def _holdout(refs: list[list[TrainConfig]], picked: dict, seeds: Sequence[int], cache: Path, workers: int) -> dict:
    """Per metric, each U's chosen grid point re-trained from `seeds` (cached; a point chosen twice trains once)."""
    if not seeds:
        return {}
    chosen = {m: [refs[i][j] for i, j in enumerate(picked[m][0])] for m in picked}
    jobs = [with_seed(c, s) for m in chosen for c in chosen[m] for s in seeds]
    runs = iter(train_many(jobs, cache, workers))
    return {m: [[next(runs).get(m) for _ in seeds] for _ in chosen[m]] for m in chosen}


def _nest(results: list[dict[str, float]], metrics: Sequence[str], shape: tuple[int, ...]) -> dict[str, list]:
    """Each metric's values as nested lists of `shape`, None where a run has no value."""
    return {m: np.array([r.get(m) for r in results], dtype=object).reshape(shape).tolist() for m in metrics}


def _lower_is_better(metric: str) -> bool:
    return not metric.endswith("_acc")


def _check(
    configs: list[StudyConfig], reference: StudyConfig, units: Sequence[int], retune: dict, reused: set[int]
) -> None:
    """The searches share one budget, the reference their compute; `units` and `retune` make sense for
    it; no held-out seed is `reused` as a choosing seed."""
    if reused:
        raise ConfigError(f"held-out seeds {sorted(reused)} are also choosing seeds: give --holdout-seeds other seeds")
    train = common_budget(configs, "multiplier (the mixed searches)")["train_tokens"]
    ref_train = reference.budget.train_tokens if reference.budget.mode == "fixed_tokens" else None
    if ref_train != train:
        # At another T the curve measures compute as well as data: the multiplier would mix the two.
        raise ConfigError(
            f"the reference trains T = {ref_train or 'E x U'} tokens, the mixed searches T = {train or 'E x U'}: "
            "give --reference a study of the same budget.mode and train_tokens"
        )
    if any(u <= reference.data.seq_len for u in units) or len(set(units)) < 2:
        raise ConfigError(f"--units needs at least two distinct values above seq_len, got {list(units)}")
    if unknown := sorted(set(retune) - set(RETUNE)):
        raise ConfigError(f"retune key(s) {unknown} unknown: use {', '.join(RETUNE)}")
    if "epochs" in retune and reference.budget.mode == "fixed_tokens":
        raise ConfigError(
            "retune epochs: E = T/U is set by the budget in fixed_tokens mode; retune weight_decay and learning_rate"
        )
    if any(not factors or not all(0 < f < math.inf for f in factors) for factors in retune.values()):
        raise ConfigError(f"retune factors must be positive numbers, one or more per key, got {retune}")


def _scaled(train: TrainConfig, factors: dict[str, float]) -> TrainConfig:
    """`train` with each retuned setting multiplied by its factor: one grid point around the best."""
    update = {}
    for key, factor in factors.items():
        section = update.get(RETUNE[key], getattr(train, RETUNE[key]))
        update[RETUNE[key]] = section.model_copy(update={key: getattr(section, key) * factor})
    scaled = train.model_copy(update=update)
    if scaled.budget.mode == "epochs" and scaled.budget.epochs < 1:
        raise ConfigError(
            f"retune epochs factor {factors['epochs']} takes E = {train.budget.epochs:g} below 1: use larger factors"
        )
    return scaled


def _best(config: StudyConfig):
    best = load_study_data(config).best()
    if best is None:
        raise ConfigError(f"study '{config.study}' has no completed trial: run or finish its search first")
    return best
