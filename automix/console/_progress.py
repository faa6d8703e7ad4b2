"""What the live view shows, kept apart from how: running trials, the best so far, the time left.

`SearchProgress` is fed by `ProgressCallback` (automix/console/_callback.py) and testable without
Ray or a terminal. `_Outlook` estimates what trials that have not ended will take.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.text import Text

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
