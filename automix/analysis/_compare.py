"""Mix vs tune: the best settings of each lever's study at equal budgets, re-trained with fresh seeds.

Each study searched one lever (mixing alone, tuning alone, or both) with the same U, proxy and
trial count. The best trial of a study was *selected* on its own seed's noise, so its value is
biased low; re-training its settings from seeds the search never saw gives unbiased means and the
error bars. Both are reported, and the first study (the joint one) minus each other study,
seed by seed: the re-runs of all studies share their seeds, so the seed's own luck (initialisation,
data order) cancels in the difference and the interval is the paired one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from automix.analysis._readback import load_study_data
from automix.analysis._reruns import settings_config, train_many, with_seed
from automix.config._study import ConfigError, StudyConfig
from automix.study._results import trained

METRICS = ("target_val_loss", "target_acc", "aux_val_loss", "aux_acc", "target_acc_chance")


def _stats(values: list[float | None]) -> dict[str, float | None]:
    x = np.array([v for v in values if v is not None], dtype=float)
    if not len(x):
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if len(x) > 1 else 0.0, "n": len(x)}


def compare_levers(configs: Sequence[StudyConfig], seeds: Sequence[int], workers: int = 1) -> dict[str, Any]:
    """Best trial of each study and its settings re-trained under `seeds`; ConfigError if budgets differ."""
    budgets = {c.budget.unique_tokens for c in configs}
    if len(budgets) > 1:
        raise ConfigError(f"compare needs one data budget, got unique_tokens {sorted(budgets)}: align them")
    levers = []
    for config in configs:
        data = load_study_data(config)
        best = data.best()
        if best is None:
            raise ConfigError(f"study '{config.study}' has no completed trial to compare")
        row = data.best_row()
        settings = settings_config(config, best.params)
        runs = train_many([with_seed(settings, s) for s in seeds], data.workspace.path("reruns"), workers)
        levers.append(
            {
                "study": config.study,
                "space": Path(config.search.space).stem,
                "n_trials": sum(trained(t) for t in data.study.trials),  # not the rejected suggestions
                "n_complete": len(data.completed),
                "best_trial": best.number,
                "settings": {
                    "weight_decay": settings.optim.weight_decay,
                    "learning_rate": settings.optim.learning_rate,
                    "epochs": settings.budget.epochs,
                    "mix_ratio": settings.budget.mix_ratio,
                },
                "selected": {m: _float(row.get(m)) for m in METRICS},
                "reruns": {m: [r.get(m) for r in runs] for m in METRICS},
                "stats": {m: _stats([r.get(m) for r in runs]) for m in METRICS},
            }
        )
    return {
        "unique_tokens": budgets.pop(),
        "seeds": list(seeds),
        "levers": levers,
        "differences": [paired_difference(levers[0], other, m) for other in levers[1:] for m in DIFF_METRICS],
    }


DIFF_METRICS = ("target_val_loss", "target_acc")


def paired_difference(first: dict[str, Any], other: dict[str, Any], metric: str, level: float = 0.95) -> dict:
    """`first` minus `other` on `metric` over the seeds both re-ran: mean and a paired t interval.

    Seeds where either run has no value are left out; with fewer than two pairs there is no interval.
    """
    pairs = [
        (a, b)
        for a, b in zip(first["reruns"][metric], other["reruns"][metric], strict=True)
        if a is not None and b is not None and np.isfinite(a) and np.isfinite(b)
    ]
    d = np.array([a - b for a, b in pairs], dtype=float)
    out: dict[str, Any] = {"first": first["study"], "other": other["study"], "metric": metric, "n": len(d)}
    out["mean"] = float(d.mean()) if len(d) else None
    out["low"] = out["high"] = None
    if len(d) > 1:
        half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        out["low"], out["high"] = float(d.mean() - half), float(d.mean() + half)
    out["level"] = level
    out["excludes_zero"] = out["low"] is not None and (out["low"] > 0 or out["high"] < 0)
    return out


def _float(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def summary_table(result: dict[str, Any]) -> list[dict[str, str]]:
    """One row per lever: settings, the selected trial, and the seed re-runs as mean ± sd."""
    rows = []
    for lever in result["levers"]:
        s, st = lever["settings"], lever["stats"]
        row = {
            "study": lever["study"],
            "trials (complete)": f"{lever['n_trials']} ({lever['n_complete']})",
            "wd / lr / E / r": (
                f"{s['weight_decay']:.3g} / {s['learning_rate']:.3g} / {s['epochs']:g} / {s['mix_ratio']:.2f}"
            ),
            "selected loss": _fmt(lever["selected"]["target_val_loss"]),
        }
        for metric in ("target_val_loss", "target_acc", "aux_acc"):
            m = st[metric]
            row[f"{metric} (n={m['n']})"] = "n/a" if m["mean"] is None else f"{m['mean']:.4f} ± {m['sd']:.4f}"
        row["chance"] = _fmt(st["target_acc_chance"]["mean"])
        rows.append(row)
    return rows


def difference_table(result: dict[str, Any]) -> list[dict[str, str]]:
    """One row per (other study, metric): the first study minus it, mean and interval, paired by seed."""
    rows = []
    for d in result.get("differences", []):
        interval = "n/a" if d["low"] is None else f"[{d['low']:+.4f}, {d['high']:+.4f}]"
        rows.append(
            {
                "difference": f"{d['first']} - {d['other']}",
                "metric": d["metric"],
                "mean": "n/a" if d["mean"] is None else f"{d['mean']:+.4f}",
                f"{d['level']:.0%} interval (n={d['n']} seeds)": interval,
                "beyond seed noise": "yes" if d["excludes_zero"] else "no",
            }
        )
    return rows


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def plot_compare(result: dict[str, Any]):
    """Bars of target loss and target accuracy per lever (mean ± sd over seeds), chance as a line."""
    import matplotlib.pyplot as plt

    levers = result["levers"]
    names = [lever["study"] for lever in levers]
    chance = levers[0]["stats"]["target_acc_chance"]["mean"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("target_val_loss", "target_acc"), strict=True):
        means = [lever["stats"][metric]["mean"] or np.nan for lever in levers]
        sds = [lever["stats"][metric]["sd"] or 0.0 for lever in levers]
        ax.bar(names, means, yerr=sds, capsize=6, color=["#4c72b0", "#dd8452", "#55a868", "#c44e52"][: len(names)])
        selected = [lever["selected"][metric] or np.nan for lever in levers]
        ax.scatter(names, selected, color="black", marker="x", zorder=3, label="selected trial (search seed)")
        lines = [chance] if metric == "target_acc" and chance is not None else []
        finite = [v for v in means + selected + lines if np.isfinite(v)]
        if finite:
            pad = 0.5 * (max(finite) - min(finite)) + max(sds + [1e-3])
            ax.set_ylim(min(finite) - pad, max(finite) + pad)
        ax.set_title(f"{metric} (mean ± sd over seeds {result['seeds']})", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    if chance is not None:
        axes[1].axhline(chance, color="grey", linestyle="--", label="chance")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig
