"""Mix vs tune: the best settings of each lever's searches, re-trained with fresh seeds.

A lever is a search space (mixing alone, tuning alone, or both); its searches are the studies that
share that space and budget and differ in their seeds. A search's best trial was *selected* on its
own seed's noise, so it is re-trained from seeds no search saw (`compare_levers` has the statistics).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from automix.analysis._readback import load_study_data
from automix.analysis._reruns import settings_config, train_many, with_seed
from automix.config._study import StudyConfig
from automix.errors import ConfigError
from automix.study._results import trained
from trainer.config import TrainConfig

METRICS = ("target_val_loss", "target_acc", "aux_val_loss", "aux_acc", "target_acc_chance")
DIFF_METRICS = ("target_val_loss", "target_acc")


def compare_levers(
    configs: Sequence[StudyConfig],
    seeds: Sequence[int],
    workers: int = 1,
    at: Callable[[TrainConfig], TrainConfig] | None = None,
) -> dict[str, Any]:
    """Re-train the best of every study under `seeds` (at another model if `at`) and compare the levers.

    Unbiased means, and every pair of levers (earlier minus later) with two intervals. The seed-only one
    pairs the levers seed by seed (a seed's luck cancels). The other also counts search-to-search
    variation: which point a search ends on is itself random, so a verdict from one search per lever
    can be search luck. It is a Welch t interval on the searches' means (a lever of one study, such
    as a grid, brings its seeds' spread instead: `welch_interval`); a bootstrap over three searches
    would see only ten resamples and be too narrow.

    Args:
        configs: the studies; those with the same search space are searches of one lever. Levers
            keep the order of their first study: each is subtracted from the ones before it.
        seeds: trainer seeds of the re-runs, shared by every study (paired).
        workers: runs trained at once, one thread each.
        at: maps a best trial's trainer config to the one re-trained, e.g. the target model of
            `automix.scaling._transfer.target_config`: does the proxy's verdict hold there?

    Returns:
        ``{"unique_tokens", "train_tokens", "seeds", "model", "levers", "differences"}``, where each
        lever has its searches (settings, the selected loss, the re-runs) and pooled stats, and
        ``model`` the re-runs' width and depth.

    Raises:
        ConfigError: if the studies' data or compute budgets differ, or a study has no completed trial.

    Example:
        >>> result = compare_levers([load_config(p) for p in paths], seeds=[101, 102, 103])  # doctest: +SKIP
        >>> difference_table(result)  # doctest: +SKIP
    """
    budget = common_budget(configs)
    searches = [_search_entry(config) for config in configs]
    trains = [s.pop("train_config") for s in searches]
    trains = [at(train) for train in trains] if at else trains
    runs = train_many(
        [with_seed(train, seed) for train in trains for seed in seeds],
        [Path(s["reruns_dir"]) for s in searches for _ in seeds],
        workers,
    )
    for i, search in enumerate(searches):
        mine = runs[i * len(seeds) : (i + 1) * len(seeds)]
        search["reruns"] = {m: [_float(r.get(m)) for r in mine] for m in METRICS}
    levers = _levers(searches)
    return {
        **budget,
        "seeds": list(seeds),
        "model": {"width": trains[0].model.width, "depth": trains[0].model.depth},
        "levers": levers,
        "differences": lever_differences(levers),
    }


def common_budget(configs: Sequence[StudyConfig], who: str = "compare") -> dict[str, Any]:
    """The one data and compute budget of `configs`; a ConfigError naming `who` if they differ."""
    budgets = {
        (c.budget.unique_tokens, c.budget.train_tokens if c.budget.mode == "fixed_tokens" else None) for c in configs
    }
    if len(budgets) > 1:
        raise ConfigError(
            f"{who} needs one budget, got (unique_tokens, train_tokens) {sorted(budgets, key=str)}: align them"
        )
    unique, train = budgets.pop()
    return {"unique_tokens": unique, "train_tokens": train}


def _search_entry(config: StudyConfig) -> dict[str, Any]:
    data = load_study_data(config)
    best = data.best()
    if best is None:
        raise ConfigError(f"study '{config.study}' has no completed trial to compare")
    row = data.best_row()
    train = settings_config(config, best.params)
    return {
        "study": config.study,
        "space": str(config.search.space),
        "n_trials": sum(trained(t) for t in data.study.trials),  # not the rejected suggestions
        "n_complete": len(data.completed),
        "best_trial": best.number,
        "settings": {
            "weight_decay": train.optim.weight_decay,
            "learning_rate": train.optim.learning_rate,
            "epochs": train.budget.effective_epochs,
            "mix_ratio": train.budget.mix_ratio,
        },
        "selected": {m: _float(row.get(m)) for m in METRICS},
        "train_config": train,
        "reruns_dir": str(data.workspace.path("reruns")),
    }


def _levers(searches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Searches grouped by space, in the order each space first appears."""
    levers: dict[str, dict[str, Any]] = {}
    for search in searches:
        lever = levers.setdefault(search["space"], {"lever": Path(search["space"]).stem, "searches": []})
        lever["searches"].append(search)
    for lever in levers.values():
        lever["stats"] = {m: _stats([v for s in lever["searches"] for v in s["reruns"][m]]) for m in METRICS}
    return list(levers.values())


def _stats(values: list[float | None]) -> dict[str, float | None]:
    x = np.array([v for v in values if v is not None], dtype=float)
    if not len(x):
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if len(x) > 1 else 0.0, "n": len(x)}


def _matrix(lever: dict[str, Any], metric: str) -> np.ndarray:
    """Re-runs as a searches × seeds array, NaN where a run has no value."""
    return np.array([[np.nan if v is None else v for v in s["reruns"][metric]] for s in lever["searches"]], dtype=float)


def lever_differences(levers: Sequence[dict[str, Any]], metrics: Sequence[str] = DIFF_METRICS) -> list[dict]:
    """`lever_difference` of every pair of `levers`, earlier minus later, for each metric.

    With several pairs each also gets ``familywise``: its searches-and-seeds interval at the
    Bonferroni level over the pairs, so "some pair differs" is not read off uncorrected intervals.
    """
    pairs = list(itertools.combinations(levers, 2))
    return [lever_difference(a, b, m, familywise=len(pairs)) for a, b in pairs for m in metrics]


def lever_difference(
    first: dict[str, Any], other: dict[str, Any], metric: str, level: float = 0.95, familywise: int = 1
) -> dict:
    """`first` lever minus `other` on `metric`, with a seed-only and a searches-and-seeds interval.

    Args:
        first, other: levers of `compare_levers` (their searches' re-runs share the seeds).
        metric: a re-run metric, e.g. ``target_val_loss``.
        level: the intervals' confidence level.
        familywise: the number of pairs compared; above 1, ``familywise`` is the searches-and-seeds
            interval at level 1 − (1 − level) / familywise (Bonferroni).

    Returns:
        The mean difference, ``seed`` (paired by seed over the searches' means per seed) and
        ``search`` (`welch_interval`: search and seed variation; None unless a lever has two
        searches), and ``excludes_zero``, decided on ``search`` where there is one, else on ``seed``.
    """
    a, b = _matrix(first, metric), _matrix(other, metric)
    out: dict[str, Any] = {"first": first["lever"], "other": other["lever"], "metric": metric, "level": level}
    out["mean"] = _float(np.nanmean(a) - np.nanmean(b)) if np.isfinite(a).any() and np.isfinite(b).any() else None
    both = np.isfinite(a).any(axis=0) & np.isfinite(b).any(axis=0)  # seeds with a run on each side
    out["seed"] = paired_interval(np.nanmean(a[:, both], axis=0) - np.nanmean(b[:, both], axis=0), level)
    out["search"] = welch_interval(a, b, level)
    if familywise > 1:
        out["familywise"] = {"pairs": familywise, **welch_interval(a, b, 1 - (1 - level) / familywise)}
    decisive = out["search"] if out["search"]["low"] is not None else out["seed"]
    out["searches_counted"] = decisive is out["search"]
    out["excludes_zero"] = decisive["low"] is not None and (decisive["low"] > 0 or decisive["high"] < 0)
    return out


def _row_means(x: np.ndarray) -> np.ndarray:
    rows = [r[np.isfinite(r)] for r in x]
    return np.array([r.mean() for r in rows if len(r)], dtype=float)


def paired_interval(d: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """Mean and t interval of paired differences `d`; no interval from fewer than two pairs."""
    out: dict[str, Any] = {"n": len(d), "low": None, "high": None}
    if len(d) > 1:
        half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        out["low"], out["high"] = float(d.mean() - half), float(d.mean() + half)
    return out


def welch_interval(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """Welch's t interval of mean(a) − mean(b) over searches, from searches × seeds arrays.

    A side with two or more searches contributes the spread of its searches' means (search and seed
    variation). A side with one search (an exhaustive grid, say) contributes its seeds' spread: its
    mean is still a mean over seeds. With one search on both sides, or a lone search of one seed,
    there is no interval here (the paired seed interval is the one to read).
    """
    out: dict[str, Any] = {"n": [len(_row_means(a)), len(_row_means(b))], "low": None, "high": None}
    sides = [_mean_error(x) for x in (a, b)]
    if None in sides or max(out["n"]) < 2:
        return out
    _, out["low"], out["high"] = welch_contrast(sides, [1, -1], level)
    return out


def welch_contrast(
    parts: Sequence[tuple[float, float, int]], signs: Sequence[int], level: float = 0.95, df: float | None = None
) -> tuple[float, float, float]:
    """Σ sign·mean over independent estimates, with its t interval.

    Args:
        parts: each estimate as (mean, variance of that mean, its degrees of freedom).
        signs: +1 or −1 per part.
        level: the interval's confidence level.
        df: the t distribution's degrees of freedom; Welch–Satterthwaite's when None.

    Returns:
        (estimate, low, high).

    Example:
        >>> welch_contrast([(1.50, 1e-4, 2), (1.60, 4e-4, 2)], [1, -1])  # doctest: +SKIP
    """
    est = sum(sign * mean for sign, (mean, _, _) in zip(signs, parts, strict=True))
    var = sum(v for _, v, _ in parts)
    if df is None:
        df = var**2 / sum(v**2 / k for _, v, k in parts) if var > 0 else sum(k for _, _, k in parts)
    half = stats.t.ppf(0.5 + level / 2, df) * np.sqrt(var)
    return float(est), float(est - half), float(est + half)


def _mean_error(x: np.ndarray) -> tuple[float, float, int] | None:
    """A lever's mean over its searches, the variance of that mean and its degrees of freedom."""
    means = _row_means(x)
    if len(means) == 1:
        means = x[np.isfinite(x)]  # a lone search: the spread of its seeds
    if len(means) < 2:
        return None
    return float(means.mean()), float(means.var(ddof=1) / len(means)), len(means) - 1


def _float(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def summary_table(result: dict[str, Any]) -> list[dict[str, str]]:
    """One row per search: its lever, settings, the selected trial, and the seed re-runs as mean ± sd."""
    rows = []
    for lever in result["levers"]:
        for search in lever["searches"]:
            s = search["settings"]
            row = {
                "lever": lever["lever"],
                "study": search["study"],
                "trials (complete)": f"{search['n_trials']} ({search['n_complete']})",
                "wd / lr / E / r": (
                    f"{s['weight_decay']:.3g} / {s['learning_rate']:.3g} / {s['epochs']:.3g} / {s['mix_ratio']:.2f}"
                ),
                "selected loss": _fmt(search["selected"]["target_val_loss"]),
            }
            for metric in ("target_val_loss", "target_acc", "aux_acc"):
                m = _stats(search["reruns"][metric])
                row[f"{metric} (n={m['n']})"] = "n/a" if m["mean"] is None else f"{m['mean']:.4f} ± {m['sd']:.4f}"
            row["chance"] = _fmt(_stats(search["reruns"]["target_acc_chance"])["mean"])
            rows.append(row)
    return rows


def difference_table(result: dict[str, Any]) -> list[dict[str, str]]:
    """One row per (pair of levers, metric): the earlier lever minus the later, with both intervals."""
    rows = []
    for d in result.get("differences", []):
        rows.append(
            {
                "difference": f"{d['first']} - {d['other']}",
                "metric": d["metric"],
                "mean": "n/a" if d["mean"] is None else f"{d['mean']:+.4f}",
                f"{d['level']:.0%} seeds only (n={d['seed']['n']})": _interval(d["seed"]),
                f"{d['level']:.0%} searches and seeds (n={d['search']['n']})": _interval(d["search"]),
                "the same, Bonferroni over the pairs": _interval(d["familywise"]) if "familywise" in d else "n/a",
                "verdict": _verdict(d),
            }
        )
    return rows


def _interval(i: dict[str, Any]) -> str:
    return "n/a" if i["low"] is None else f"[{i['low']:+.4f}, {i['high']:+.4f}]"


def _verdict(d: dict[str, Any]) -> str:
    noise = "search and seed noise" if d["searches_counted"] else "seed noise (one search per lever)"
    return f"beyond {noise}" if d["excludes_zero"] else f"within {noise}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def plot_compare(result: dict[str, Any]):
    """Bars of target loss and target accuracy per lever (mean ± sd over searches and seeds), chance as a line."""
    import matplotlib.pyplot as plt

    levers = result["levers"]
    names = [lever["lever"] for lever in levers]
    chance = levers[0]["stats"]["target_acc_chance"]["mean"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("target_val_loss", "target_acc"), strict=True):
        means = [lever["stats"][metric]["mean"] or np.nan for lever in levers]
        sds = [lever["stats"][metric]["sd"] or 0.0 for lever in levers]
        ax.bar(names, means, yerr=sds, capsize=6, color=["#4c72b0", "#dd8452", "#55a868", "#c44e52"][: len(names)])
        selected = [(i, s["selected"][metric]) for i, lever in enumerate(levers) for s in lever["searches"]]
        xs, ys = zip(*[(i, v if v is not None else np.nan) for i, v in selected], strict=True)
        ax.scatter(xs, ys, color="black", marker="x", zorder=3, label="selected trial of each search")
        lines = [chance] if metric == "target_acc" and chance is not None else []
        finite = [v for v in list(means) + list(ys) + lines if np.isfinite(v)]
        if finite:
            pad = 0.5 * (max(finite) - min(finite)) + max(sds + [1e-3])
            ax.set_ylim(min(finite) - pad, max(finite) + pad)
        ax.set_title(f"{metric} (mean ± sd over searches × seeds {result['seeds']})", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    if chance is not None:
        axes[1].axhline(chance, color="grey", linestyle="--", label="chance")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig
