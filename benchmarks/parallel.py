"""Parallel efficiency: a fixed set of trials run 2 at a time (1 CPU each) vs one at a time.

    flock /tmp/automix-cpu.lock .venv/bin/python benchmarks/parallel.py

Both searches run the same 4 enqueued trials of `examples/ar_en_cpu.yaml` (no scheduler, so none
is stopped early; 1 torch thread per trial either way) end to end through `automix.search`, Ray
start to read-back. Goal: parallel wall <= 0.6 x sequential wall on a 2-core machine.
"""

from __future__ import annotations

from _common import Clock, machine, print_table, study_config

from automix.driver._search import search

# A fixed set: 400k-800k training tokens each (~8-15 s of training at 1 thread).
TRIALS = [
    {"weight_decay": 1.0, "learning_rate": 3e-3, "epochs": 4, "mix_ratio": 0.0},
    {"weight_decay": 0.1, "learning_rate": 1e-2, "epochs": 4, "mix_ratio": 0.5},
    {"weight_decay": 0.3, "learning_rate": 3e-3, "epochs": 6, "mix_ratio": 0.25},
    {"weight_decay": 3.0, "learning_rate": 1e-3, "epochs": 6, "mix_ratio": 0.0},
]


def timed_search(concurrency: int) -> tuple[float, float]:
    """Wall seconds of the whole search, and the trials' summed in-loop seconds."""
    config = study_config(f"bench_parallel_{concurrency}")
    clock = Clock()
    result = search(
        config,
        verbose=False,
        n_trials=len(TRIALS),
        enqueue=TRIALS,
        scheduler="none",
        concurrency=concurrency,
        cpus_per_trial=1,
    )
    wall = clock.elapsed()
    return wall, float(result.trials["user_attrs_wall_time_s"].sum())


def main() -> None:
    seq_wall, seq_loop = timed_search(1)
    par_wall, par_loop = timed_search(2)
    print(f"{machine()}; {len(TRIALS)} fixed trials, 1 CPU and 1 thread each")
    print_table(
        "parallel vs sequential (goal: wall ratio <= 0.6)",
        ["run", "wall s", "sum of trial loop s", "wall ratio"],
        [
            ("sequential (concurrency 1)", f"{seq_wall:.1f}", f"{seq_loop:.1f}", "1.00"),
            ("parallel (concurrency 2)", f"{par_wall:.1f}", f"{par_loop:.1f}", f"{par_wall / seq_wall:.2f}"),
        ],
    )
    print(f"\nper-trial slowdown when two share the cores: {par_loop / seq_loop:.2f}x")


if __name__ == "__main__":
    main()
