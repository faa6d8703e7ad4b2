"""Console progress: a line per finished trial, then a table of trials and the best params."""

from __future__ import annotations

import math
import sys

import pandas as pd
from ray.tune import Callback
from rich.console import Console
from rich.table import Table

from automix.protocol import TRIAL_KEY, final_state, user_params

# Piped output (CI logs, tee) gets a wide console instead of rich's 80-column default.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
SHORT = {
    "weight_decay": "wd",
    "learning_rate": "lr",
    "mix_ratio": "r",
    "epochs": "E",
    "wall_time_s": "wall_s",
}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


class ProgressCallback(Callback):
    """Prints `[done/total] trial N STATE metric=... params` as trials end."""

    def __init__(self, metrics: list[str], total: int, enabled: bool = True):
        self.metrics, self.total, self.enabled, self.done = metrics, total, enabled, 0
        self.metric = metrics[0]

    def _line(self, trial, state: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        result = trial.last_result or {}
        params = " ".join(f"{k}={_fmt(v)}" for k, v in user_params(trial.config).items())
        value = _fmt(result.get(self.metric, float("nan")))
        tokens = int(result.get("tokens", 0))
        console.print(
            f"[{self.done}/{self.total}] trial {trial.config.get(TRIAL_KEY)} {state:8s} "
            f"{self.metric}={value} tokens={tokens:,} {params}"
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial, final_state(trial.last_result or {}, self.metrics)[0])

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "FAIL")


def print_summary(trials: pd.DataFrame, best: dict, metric: str) -> None:
    """Rich table of every trial in the study, then the best trial's params."""
    table = Table(title=f"trials ({metric})")
    params = [c for c in trials.columns if c.startswith("params_")]
    attrs = [c for c in ("user_attrs_tokens", "user_attrs_wall_time_s") if c in trials.columns]
    for col in ["number", "state", "value", *params, *attrs]:
        name = col.removeprefix("params_").removeprefix("user_attrs_")
        table.add_column(SHORT.get(name, name), justify="right")
    for _, row in trials.iterrows():
        table.add_row(*(_fmt(row.get(c)) for c in ["number", "state", "value", *params, *attrs]))
    console.print(table)
    if best.get("best_trial") is None:
        console.print("[red]no trial completed[/red]")
        return
    console.print(
        f"best trial {best['best_trial']}: {metric}={_fmt(best['best_value'])} "
        + " ".join(f"{k}={_fmt(v)}" for k, v in best["best_params"].items())
    )
