"""Console progress of a search: a live view while trials run, a line per finished trial, a summary.

On a terminal, a live view (rich) shows each running trial (number, params, tokens done / planned,
last loss, elapsed) and the search (finished / planned, best so far, estimated time left); it is
redrawn every second, so the console never goes quiet for long. Without a terminal (CI logs, a
pipe), each event is one plain line, and a status line comes every `HEARTBEAT_S` seconds.

One naming and number format everywhere (lines, live view, summary table): params by their short
names (`SHORT`: wd, lr, E, r), token counts as `fmt_tokens` (412k, 1.2M), durations as
`fmt_duration`; no line is wider than `WIDTH` columns.

`automix/engine/_quiet.py` keeps Ray's and MLflow's own output (banners, warnings, worker tracebacks) off the
console: it goes to WORK/automix.log, unless `AUTOMIX_VERBOSE=1` (`automix search --verbose`).
"""

from __future__ import annotations

import contextlib
import heapq
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pandas as pd
from ray.tune import Callback
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from automix.engine._callbacks import traceback_path
from automix.protocol import PROGRESS, REJECTED, TOKENS, TRIAL_KEY, error_reason, final_state, user_params

WIDTH = 100
HEARTBEAT_S = 30.0  # without a terminal: a status line this often
REFRESH_S = 1.0  # on a terminal: how often the live view is redrawn
SHORT = {
    "weight_decay": "wd",
    "learning_rate": "lr",
    "epochs": "E",
    "mix_ratio": "r",
    "unique_tokens": "U",
    "wall_time_s": "wall",
}


def _console(file: IO[str] | None = None) -> Console:
    """A console at most `WIDTH` columns wide (rich's 80 columns when piped would wrap tables)."""
    probe = Console(file=file, stderr=file is None)
    return Console(file=file, stderr=file is None, width=min(probe.width if probe.is_terminal else WIDTH, WIDTH))


console = _console()


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


@dataclass
class _Running:
    number: int
    params: dict[str, Any]
    started: float
    planned: float | None = None
    tokens: float | None = None
    loss: float | None = None
    progress: float | None = None

    def projected_s(self, now: float) -> float | None:
        """Its whole length if it runs to the end, from its own progress."""
        return (now - self.started) / self.progress if self.progress else None


@dataclass(frozen=True)
class _Outlook:
    """What trials that have not ended will take, learnt from those so far.

    Early stopping makes two kinds of trial: stopped ones, short, and those run to their end. A
    running trial past the furthest point where one was stopped will run to its end.
    """

    full_s: float | None  # a trial run to its end
    stopped_s: float  # a stopped one
    survive: float  # the share of trials run to their end
    stop_at: float | None  # the furthest progress at which a trial was stopped

    def new_s(self) -> float | None:
        """A waiting trial's expected length."""
        if self.full_s is None:
            return self.stopped_s if self.survive == 0 else None
        return self.survive * self.full_s + (1 - self.survive) * self.stopped_s

    def left_s(self, trial: _Running, now: float) -> float:
        """A running trial's expected time left."""
        elapsed = now - trial.started
        own = trial.projected_s(now) or self.full_s
        to_end = max(0.0, own - elapsed) if own is not None else 0.0
        if trial.progress and (self.stop_at is None or trial.progress > self.stop_at):
            return to_end
        return self.survive * to_end + (1 - self.survive) * max(0.0, self.stopped_s - elapsed)


@dataclass
class SearchProgress:
    """What the console shows, kept apart from how (testable without Ray or a terminal)."""

    metric: str
    total: int
    concurrency: int = 1
    planned: Callable[[dict], float] | None = None
    clock: Callable[[], float] = time.monotonic
    running: dict[str, _Running] = field(default_factory=dict)
    done: int = 0
    states: dict[str, int] = field(default_factory=dict)
    full: list[float] = field(default_factory=list)  # lengths of trials run to their end
    stopped: list[tuple[float, float]] = field(default_factory=list)  # (length, progress) of the others
    best: tuple[float, int] | None = None
    started: float = 0.0

    def __post_init__(self):
        self.started = self.clock()

    def start(self, trial_id: str, number: int, params: dict[str, Any]) -> None:
        """A trial started: note it, with its planned tokens when they can be known."""
        planned = None
        if self.planned is not None:
            with contextlib.suppress(Exception):  # an estimate only: never fail the search for it
                planned = float(self.planned(params))
        self.running[trial_id] = _Running(number, params, self.clock(), planned)

    def result(self, trial_id: str, result: dict) -> None:
        """A trial reported: its tokens, metric and progress so far."""
        trial = self.running.get(trial_id)
        if trial is None:
            return
        trial.tokens = result.get(TOKENS, trial.tokens)
        trial.loss = result.get(self.metric, trial.loss)
        if result.get(PROGRESS):
            trial.progress = float(result[PROGRESS])
            if trial.tokens:
                trial.planned = trial.tokens / trial.progress  # the trainer's own plan beats an estimate

    def end(self, trial_id: str, state: str, value: float | None, minimize: bool = True) -> _Running | None:
        """A trial ended in `state`; a COMPLETE one may be the new best. Returns what was running."""
        trial = self.running.pop(trial_id, None)
        self.done += 1
        self.states[state] = self.states.get(state, 0) + 1
        if trial is not None:
            length = self.clock() - trial.started
            if state == "COMPLETE":
                self.full.append(length)
            else:
                self.stopped.append((length, trial.progress or 0.0))
        if state == "COMPLETE" and isinstance(value, int | float) and math.isfinite(value) and trial is not None:
            if self.best is None or (value < self.best[0] if minimize else value > self.best[0]):
                self.best = (float(value), trial.number)
        return trial

    def outlook(self) -> _Outlook:
        """The lengths and survival share the time-left estimate uses (see `_Outlook`)."""
        now, running = self.clock(), list(self.running.values())  # a snapshot: the live view has its own thread
        stop_at = max((p for _, p in self.stopped), default=None)
        past = [t for t in running if t.progress and (stop_at is None or t.progress > stop_at)]
        full = self.full + [t.projected_s(now) for t in past]
        if not full and not self.stopped:  # nothing to go on yet but the running trials' own pace
            full = [t.projected_s(now) for t in running if t.progress]
        decided = len(self.full) + len(past) + len(self.stopped)
        return _Outlook(
            full_s=sum(full) / len(full) if full else None,
            stopped_s=sum(d for d, _ in self.stopped) / len(self.stopped) if self.stopped else 0.0,
            survive=(len(self.full) + len(past)) / decided if decided else 1.0,
            stop_at=stop_at,
        )

    def typical_s(self) -> float | None:
        """A waiting trial's expected length; None until a trial has ended or reported progress."""
        return self.outlook().new_s()

    def eta_s(self) -> float | None:
        """Seconds left: each slot finishes its running trial, then takes the next waiting one at a
        typical length; the search ends with its last slot. None until there is a typical length."""
        now, outlook = self.clock(), self.outlook()
        typical = outlook.new_s()
        if typical is None:
            return None
        trials = list(self.running.values())
        slots = sorted(outlook.left_s(t, now) for t in trials)
        slots = [0.0] * max(0, self.concurrency - len(slots)) + slots
        for _ in range(max(0, self.total - self.done - len(trials))):
            heapq.heapreplace(slots, slots[0] + typical)
        return max(slots, default=0.0)

    def status(self) -> str:
        """`search 3/12 done, 2 running, best target_val_loss=2.31 (trial 1), ~4m10s left, 1m02s in`."""
        parts = [f"search {self.done}/{self.total} done", f"{len(self.running)} running"]
        if self.best is not None:
            parts.append(f"best {self.metric}={fmt_value(self.best[0])} (trial {self.best[1]})")
        eta = self.eta_s()
        parts.append(f"~{fmt_duration(eta)} left" if eta is not None else "time left: estimating")
        parts.append(f"{fmt_duration(self.clock() - self.started)} in")
        return fit(", ".join(parts))

    def trial_line(self, trial: _Running) -> str:
        """`trial 4  412k/1.02M tokens  loss=2.412  1m05s  wd=0.1 lr=0.003 E=8 r=0.25`."""
        tokens = ""
        if trial.tokens is not None or trial.planned is not None:  # a custom objective may count none
            tokens = (
                f"{fmt_tokens(trial.tokens) if trial.tokens is not None else '0'}/{fmt_tokens(trial.planned)} tokens  "
            )
        loss = f"{self.metric}={fmt_value(trial.loss)}" if trial.loss is not None else "no eval yet"
        elapsed = fmt_duration(self.clock() - trial.started)
        return fit(f"trial {trial.number:<3d} {tokens}{loss}  {elapsed}  {fmt_params(trial.params)}")

    def view(self) -> Group:
        """The live view: the search's status line, then a line per running trial."""
        lines = [Text(self.status(), style="bold")]
        trials = sorted(list(self.running.values()), key=_number)  # a snapshot, as in eta_s
        lines += [Text(fit("  " + self.trial_line(t))) for t in trials]
        return Group(*lines)


def planned_tokens(objective: Any, cost: Callable[[dict], float] | None = None) -> Callable[[dict], float] | None:
    """A trial's planned training tokens from its params: the plan's cost, else the built-in trainer
    objective's budget (T = E·U/(1-r)); None for a custom objective without a cost."""
    if cost is not None:
        return cost
    space, base = getattr(objective, "space", None), getattr(objective, "base", None)
    if space is None or base is None:
        return None
    return lambda params: space.apply(params, base).budget.total_tokens


def _number(trial: _Running) -> int:
    return trial.number


_LIVE_STATE = ("console", "_live", "_lock", "_stop", "_heartbeat")


class ProgressCallback(Callback):
    """Ray Tune callback: the live view (a terminal) or plain lines (no terminal), and a line per
    finished trial: `[done/total] trial N STATE metric=... tokens=... wall params`; a failed trial's
    line gives its cause and the file with its full traceback (`errors_dir`)."""

    def __init__(
        self,
        metrics: list[str],
        total: int,
        enabled: bool = True,
        *,
        concurrency: int = 1,
        minimize: bool = True,
        planned: Callable[[dict], float] | None = None,
        errors_dir: Path | None = None,
        stream: IO[str] | None = None,
        live: bool | None = None,
    ):
        self.metrics, self.enabled, self.minimize, self.errors_dir = metrics, enabled, minimize, errors_dir
        self.progress = SearchProgress(metrics[0], total, concurrency, planned)
        self.console = _console(stream) if stream is not None else console
        self.live_view = self.console.is_terminal if live is None else live
        self._live: Live | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._legend = False  # the short names' legend is printed once, with the first trial

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks into the experiment state; a console stream, a lock or a
        # thread cannot be, and a restored copy draws nothing.
        state = {k: v for k, v in self.__dict__.items() if k not in _LIVE_STATE}
        return {**state, "enabled": False}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.console, self._live, self._heartbeat = console, None, None
        self._lock, self._stop = threading.Lock(), threading.Event()

    # Tune calls setup once before the first trial and on_experiment_end after the last.
    def setup(self, **info) -> None:
        """Say what the search will run, then start the live view or the heartbeat."""
        if not self.enabled:
            return
        self.say(f"searching {self.progress.total} trials, {self.progress.concurrency} at a time")
        if self.live_view:
            self._live = Live(
                get_renderable=self.progress.view,
                console=self.console,
                refresh_per_second=1 / REFRESH_S,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        else:
            self._heartbeat = threading.Thread(target=self._beat, name="automix-progress", daemon=True)
            self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.say(self.progress.status())

    def say(self, line: str) -> None:
        """Print one line above the live view (or as is without one)."""
        if not self.enabled:
            return
        with self._lock:
            self.console.print(Text(line), soft_wrap=True)

    def close(self) -> None:
        """Stop the live view and the heartbeat (also called by the search if Tune never ends cleanly)."""
        self._stop.set()
        if self._live is not None:
            self._live.stop()
            self._live = None

    def on_experiment_end(self, trials, **info):
        self.close()

    def on_trial_start(self, iteration, trials, trial, **info):
        number = int(trial.config.get(TRIAL_KEY, -1))
        params = user_params(trial.config)
        if not self._legend and (legend := _legend(list(params))):
            self._legend = True
            self.say(f"params: {legend}")
        self.progress.start(trial.trial_id, number, params)
        if not self.live_view:
            planned = self.progress.running[trial.trial_id].planned
            tokens = f" {fmt_tokens(planned)} tokens" if planned else ""
            self.say(fit(f"trial {number} started{tokens} {fmt_params(user_params(trial.config))}"))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.progress.result(trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        self._line(trial, final_state(result, self.metrics)[0], result)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "FAIL", trial.last_result or {}, failed=True)

    def _line(self, trial, state: str, result: dict, failed: bool = False) -> None:
        value = result.get(self.metrics[0])
        running = self.progress.end(trial.trial_id, state, value, self.minimize)
        if not self.enabled:
            return
        p = self.progress
        number = trial.config.get(TRIAL_KEY)
        head = f"[{p.done}/{p.total}] trial {number} {state}"
        if failed:
            cause = error_reason(getattr(trial, "error_file", None)) or "unknown error"
            saved = traceback_path(self.errors_dir, trial) if self.errors_dir else None
            path = saved if saved is not None and saved.is_file() else getattr(trial, "error_file", None)
            tail = f" (see {_relative(path)})" if path else ""  # the full traceback
            # One line: the cause is cut (to no less than 60 columns) to make room for the path,
            # which is never cut: the line is wider than WIDTH only when the path is very long.
            self.say(fit(f"{head} {cause}", max(len(head) + 60, WIDTH - len(tail))) + tail)
            return
        wall = fmt_duration(p.clock() - running.started) if running else "?"
        tokens = f" {fmt_tokens(result[TOKENS])} tokens" if result.get(TOKENS) is not None else ""
        params = fmt_params(user_params(trial.config))
        self.say(fit(f"{head} {self.metrics[0]}={fmt_value(value)}{tokens} {wall} {params}"))


def print_summary(trials: pd.DataFrame, best: dict, metric: str) -> None:
    """Table of every trial in the study (same names and formats as the progress lines), then the best."""
    params = [c for c in trials.columns if c.startswith("params_")]
    legend = _legend([c.removeprefix("params_") for c in params])
    table = Table(title=f"trials, {metric}" + (f" ({legend})" if legend else ""), title_justify="left")
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


def _legend(params: list[str]) -> str:
    """`wd=weight_decay lr=learning_rate`: the short names among `params`, in `SHORT`'s order ('' if none)."""
    return " ".join(f"{v}={k}" for k, v in SHORT.items() if k in params)


def _relative(path: str | Path) -> str:
    """A path relative to the working directory when it lies under it (shorter lines)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _plain(v: Any) -> Any:
    """numpy scalars as Python numbers, NaN (a missing cell) as None."""
    if hasattr(v, "item"):
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v
