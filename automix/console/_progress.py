"""What the live view shows, kept apart from how: running trials, the best so far, the time left.

`SearchProgress` is fed by `ProgressCallback` (automix/console/_callback.py) and testable without
Ray or a terminal; automix/console/_eta.py estimates the time left from it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.text import Text

from automix.console._eta import Work, time_left_s
from automix.console._format import fit, fmt_duration, fmt_params, fmt_tokens, fmt_value
from automix.protocol import PROGRESS, TOKENS


@dataclass
class _Running:
    number: int
    params: dict[str, Any]
    started: float
    planned: float | None = None
    tokens: float | None = None
    loss: float | None = None
    progress: float | None = None
    reported_s: float = 0.0  # seconds from its start to its last report (to its end once it ended)
    complete: bool = False

    def work(self, in_tokens: bool) -> Work:
        """The trial for the time-left estimate: in tokens, or in shares of a trial without a plan."""
        if in_tokens:
            return Work(self.planned, self.tokens or 0.0, self.reported_s, self.progress, self.complete)
        return Work(1.0, self.progress or 0.0, self.reported_s, self.progress, self.complete)


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
    finished: list[_Running] = field(default_factory=list)
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
        trial.reported_s = self.clock() - trial.started
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
            trial.reported_s, trial.complete = self.clock() - trial.started, state == "COMPLETE"
            self.finished.append(trial)
        if state == "COMPLETE" and isinstance(value, int | float) and math.isfinite(value) and trial is not None:
            if self.best is None or (value < self.best[0] if minimize else value > self.best[0]):
                self.best = (float(value), trial.number)
        return trial

    def eta_s(self) -> float | None:
        """Seconds left (automix/console/_eta.py); None until a trial has reported."""
        now, running = self.clock(), list(self.running.values())  # a snapshot: the live view has its own thread
        in_tokens = all(t.planned for t in [*self.finished, *running])
        return time_left_s(
            [t.work(in_tokens) for t in self.finished],
            [(t.work(in_tokens), now - t.started) for t in running],
            waiting=max(0, self.total - self.done - len(running)),
            slots=self.concurrency,
        )

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
