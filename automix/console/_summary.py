"""The table a search prints at its end: every trial of the study, then the best."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.table import Table
from rich.text import Text

from automix.console._format import console, fit, fmt_duration, fmt_params, fmt_tokens, fmt_value, legend, short
from automix.protocol import REJECTED


def print_summary(trials: pd.DataFrame, best: dict, metric: str) -> None:
    """Table of every trial in the study (same names and formats as the progress lines), then the best."""
    params = [c for c in trials.columns if c.startswith("params_")]
    names = legend([c.removeprefix("params_") for c in params])
    table = Table(title=f"trials, {metric}" + (f" ({names})" if names else ""), title_justify="left")
    attrs = [c for c in ("user_attrs_tokens", "user_attrs_wall_time_s") if c in trials.columns]
    formats = {"user_attrs_tokens": fmt_tokens, "user_attrs_wall_time_s": fmt_duration}
    for col in ["number", "state", "value", *params, *attrs]:
        table.add_column(short(col.removeprefix("params_").removeprefix("user_attrs_")), justify="right")
    for _, row in trials.iterrows():
        state = "REJECTED" if isinstance(row.get(f"user_attrs_{REJECTED}"), str) else row.get("state")
        cells = [row.get("number"), state, row.get("value"), *(row.get(c) for c in params)]
        table.add_row(*(fmt_value(_plain(v)) for v in cells), *(formats[c](_plain(row.get(c))) for c in attrs))
    console.print(table)
    if best.get("best_trial") is None:
        console.print("[red]no trial completed[/red]")
        return
    value, params = fmt_value(best["best_value"]), fmt_params(best["best_params"])
    console.print(Text(fit(f"best trial {best['best_trial']}: {metric}={value} {params}")))


def _plain(v: Any) -> Any:
    """numpy scalars as Python numbers, NaN (a missing cell) as None."""
    if hasattr(v, "item"):
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v
