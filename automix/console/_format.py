"""One naming and number format for everything a search prints (lines, live view, summary table).

Params go by their short names (`SHORT`: wd, lr, E, r), token counts as `fmt_tokens` (412k, 1.2M),
durations as `fmt_duration`; no line is wider than `WIDTH` columns.
"""

from __future__ import annotations

import math
from typing import IO, Any

from rich.console import Console

WIDTH = 100
SHORT = {
    "weight_decay": "wd",
    "learning_rate": "lr",
    "epochs": "E",
    "mix_ratio": "r",
    "unique_tokens": "U",
    "wall_time_s": "wall",
}


def make_console(file: IO[str] | None = None) -> Console:
    """A console at most `WIDTH` columns wide (rich's 80 columns when piped would wrap tables)."""
    probe = Console(file=file, stderr=file is None)
    return Console(file=file, stderr=file is None, width=min(probe.width if probe.is_terminal else WIDTH, WIDTH))


console = make_console()


def short(name: str) -> str:
    """A param's or column's console name: `SHORT`, else the last part of a dotted name."""
    return SHORT.get(name, name.rsplit(".", 1)[-1])


def fmt_value(v: Any) -> str:
    """Floats to 4 significant digits, everything else as is."""
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return "" if v is None else str(v)


def fmt_tokens(n: float | None) -> str:
    """950, 412k, 1.2M, 3.1B: the one way token counts are written (3 significant digits)."""
    if n is None or isinstance(n, bool) or not isinstance(n, int | float) or not math.isfinite(n):
        return "?"
    if abs(n) < 999.5:
        return f"{n:.0f}"
    for unit, size in (("k", 1e3), ("M", 1e6), ("B", 1e9)):
        v = n / size
        if abs(v) < 999.5 or unit == "B":
            return f"{v:.3g}{unit}" if abs(v) < 100 else f"{v:.0f}{unit}"
    raise AssertionError("unreachable")


def fmt_duration(seconds: float | None) -> str:
    """42s, 3m05s, 1h02m."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def fmt_params(params: dict[str, Any]) -> str:
    """`wd=0.1 lr=0.003 E=8 r=0.25`: short names, `fmt_value` numbers."""
    return " ".join(f"{short(k)}={fmt_value(v)}" for k, v in params.items())


def fit(line: str, width: int = WIDTH) -> str:
    """Cut a line to `width` columns (an ellipsis marks the cut)."""
    return line if len(line) <= width else line[: width - 1] + "…"


def legend(params: list[str]) -> str:
    """`wd=weight_decay lr=learning_rate`: the short names among `params`, in `SHORT`'s order ('' if none)."""
    return " ".join(f"{v}={k}" for k, v in SHORT.items() if k in params)
