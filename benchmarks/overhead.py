"""Orchestration overhead of a CPU search: the share of wall time not spent training or evaluating.

    flock /tmp/automix-cpu.lock .venv/bin/python benchmarks/overhead.py [--trials 12] [--cold] [key=value ...]

Runs `examples/ar_en_cpu.yaml` (12 trials, 2 at a time, 1 CPU each, GP + ASHA) in a fresh work dir,
runs/bench_overhead, with a driver-side Ray Tune callback that timestamps each trial's start and end.
By default the user's automix cache is used as any search would find it (token arrays of the shared
corpora and MLflow's empty store made by an earlier search); `--cold` starts from an empty cache, as
the very first search on a machine does. The trainer reports
`compute_time_s` (seconds inside training steps and evaluations), so

    overhead = 1 - sum(compute_time_s) / (concurrency x wall)

counts every slot-second not spent computing (the table splits it into where it went), while

    wall-clock overhead = 1 - (time at least one trial is in its training loop) / wall

is the orchestration proper: the time during which no trial trains at all.
"""

from __future__ import annotations

import argparse
import os
import time

from _common import ROOT, machine, print_table, study_config
from ray import tune

from automix.driver._search import search


class Timeline(tune.Callback):
    """Driver-clock start and end of every trial, and its last reported metrics."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.start: dict[str, float] = {}
        self.end: dict[str, float] = {}
        self.last: dict[str, dict] = {}
        self.last_at: dict[str, float] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.start[trial.trial_id] = time.perf_counter() - self.t0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.last[trial.trial_id] = result
        self.last_at[trial.trial_id] = time.perf_counter() - self.t0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.end[trial.trial_id] = time.perf_counter() - self.t0

    on_trial_error = on_trial_complete


def breakdown(timeline: Timeline, wall: float, concurrency: int) -> list[tuple[str, float]]:
    """Slot-seconds (concurrency x wall) split into compute and the overheads around it."""
    ids = list(timeline.end)
    compute = sum(timeline.last[i].get("compute_time_s", 0.0) for i in ids)
    loop = sum(timeline.last[i].get("wall_time_s", 0.0) for i in ids)
    in_trial = sum(timeline.end[i] - timeline.start[i] for i in ids)
    first, last = min(timeline.start.values()), max(timeline.end.values())
    return [
        ("training steps + evaluation (compute_time_s)", compute),
        ("in the loop, not computing: reports, checkpoints", loop - compute),
        ("in a trial, outside the loop: actor, data, model, final save", in_trial - loop),
        ("idle slots between trials: suggestions, scheduling, tail", concurrency * (last - first) - in_trial),
        ("before the first trial: Ray start, data check, study, MLflow", concurrency * first),
        ("after the last trial: Ray shutdown, read-back, MLflow", concurrency * (wall - last)),
    ]


def training_time(timeline: Timeline) -> float:
    """Length of the union of the trials' loop intervals [last result - wall_time_s, last result]."""
    spans = sorted((at - timeline.last[i].get("wall_time_s", 0.0), at) for i, at in timeline.last_at.items())
    total, reach = 0.0, float("-inf")
    for lo, hi in spans:
        total += max(0.0, hi - max(lo, reach))
        reach = max(reach, hi)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--cold", action="store_true", help="start from an empty automix cache")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. budget.unique_tokens=50000")
    args = parser.parse_args()
    if args.cold:
        os.environ["AUTOMIX_CACHE"] = str(ROOT / "runs" / "bench_overhead" / "cache")  # emptied with the work dir
    config = study_config("bench_overhead", [f"search.n_trials={args.trials}", *args.overrides])
    concurrency = config.search.concurrency
    timeline = Timeline()
    search(config, verbose=False, callbacks=[timeline])
    wall = time.perf_counter() - timeline.t0
    parts = breakdown(timeline, wall, concurrency)
    slots = concurrency * wall
    cache = "empty cache (--cold)" if args.cold else "warm cache"
    print(f"{machine()}; {len(timeline.end)} trials, concurrency {concurrency}, {cache}, wall {wall:.1f} s")
    rows = [(name, f"{s:.1f}", f"{100 * s / slots:.1f}%") for name, s in parts]
    rows.append(("total slot-seconds (concurrency x wall)", f"{slots:.1f}", "100%"))
    print_table("where the slot-seconds went", ["part", "slot-s", "share"], rows)
    setup = [timeline.end[i] - timeline.start[i] - timeline.last[i].get("wall_time_s", 0.0) for i in timeline.end]
    print(f"\nper trial outside its loop: median {sorted(setup)[len(setup) // 2]:.2f} s, max {max(setup):.2f} s")
    print(f"slot overhead = 1 - compute / slot-seconds = {100 * (1 - parts[0][1] / slots):.1f}%")
    training = training_time(timeline)
    print(f"wall-clock overhead = 1 - {training:.1f} s training / {wall:.1f} s = {100 * (1 - training / wall):.1f}%")


if __name__ == "__main__":
    main()
