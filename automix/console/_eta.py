"""How long a search still takes, from the trials so far.

A trial's time is a start-up cost plus a pace per unit of work (tokens when the objective plans
them, else shares of a trial), fitted on every trial that reported. Early stopping makes two kinds
of trial, stopped ones that did a share of their plan and those run to their end; a waiting trial
is expected to be of the mean planned size and to be stopped as often as the trials so far. Each
slot finishes its running trial, then takes waiting ones; the search ends with its last slot.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Work:
    """A trial as of its last report (or its end)."""

    size: float  # planned units: tokens, or 1.0 for a whole trial when none are planned
    done: float  # units done
    seconds: float  # from its start to that report (or its end)
    progress: float | None = None  # share of its plan done
    complete: bool = False  # ended after training to its end


@dataclass(frozen=True)
class Pace:
    """Seconds a trial needs: `start_s` once, then `per_unit_s` per unit of work."""

    start_s: float
    per_unit_s: float


def fit_pace(work: Sequence[Work]) -> Pace | None:
    """Least squares seconds = start + per_unit · done over trials that did some work; None if none did.

    With fewer than two distinct sizes, or a negative start-up, the start-up is taken as 0.
    """
    pts = np.array([(w.done, w.seconds) for w in work if w.done > 0], dtype=float)
    if not len(pts):
        return None
    if len(np.unique(pts[:, 0])) > 1:
        per_unit, start = np.polyfit(pts[:, 0], pts[:, 1], 1)
        if start >= 0 and per_unit > 0:
            return Pace(float(start), float(per_unit))
    return Pace(0.0, float(pts[:, 1].sum() / pts[:, 0].sum()))


def time_left_s(
    finished: Sequence[Work], running: Sequence[tuple[Work, float]], waiting: int, slots: int
) -> float | None:
    """Seconds until the search ends; None until some trial has done work.

    Args:
        finished: the trials that ended (stopped ones have `complete` False and their progress).
        running: each running trial as of its last report, with the seconds since it started.
        waiting: trials still to start.
        slots: trials run at once.
    """
    pace = fit_pace([*finished, *(w for w, _ in running)])
    if pace is None:
        return None
    stops = [w.progress or 0.0 for w in finished if not w.complete]
    stop_at = max(stops, default=None)
    stop_share = float(np.mean(stops)) if stops else 1.0

    def sure(w: Work) -> bool:  # past every point where a trial was stopped: it runs to its end
        return stop_at is None or (w.progress or 0.0) > stop_at

    n_full = sum(w.complete for w in finished) + sum(sure(w) for w, _ in running if w.progress)
    decided = n_full + len(stops)
    survive = n_full / decided if decided else 1.0

    def left(w: Work, since: float) -> float:
        to_end = max(0.0, w.size - w.done)
        if not sure(w):
            to_end = survive * to_end + (1 - survive) * max(0.0, stop_share * w.size - w.done)
        start = pace.start_s if w.done == 0 else 0.0
        return max(0.0, start + pace.per_unit_s * to_end - (since - w.seconds))

    sizes = [w.size for w in finished] + [w.size for w, _ in running]
    new = pace.start_s + pace.per_unit_s * float(np.mean(sizes)) * (survive + (1 - survive) * stop_share)
    ends = sorted(left(w, since) for w, since in running)
    ends = [0.0] * max(0, slots - len(ends)) + ends
    for _ in range(waiting):
        heapq.heapreplace(ends, ends[0] + new)
    return max(ends, default=0.0)
