"""Sampler efficiency on a synthetic data-constrained loss surface with a known optimum.

    .venv/bin/python benchmarks/samplers.py [--seeds 5]

For each sampler (automix's own factory, over search_spaces/paper.yaml) it counts the trials and
the training tokens (the cost, T = E·U/(1−r) per trial) spent until the best-so-far loss is within
0.5% of the optimum, medians over seeds, and prints them with ratios to the grid and to random.
Samplers run through Optuna's ask/tell directly: this measures suggestion quality, not Ray.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import optuna
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).parent))
import synthetic  # noqa: E402

from automix.config._space import load_space  # noqa: E402
from automix.engine._samplers import grid_size, make_sampler  # noqa: E402

TOLERANCE = 0.005
MAX_TRIALS = {"tpe": 300, "random": 3000, "gp": 120, "costei": 120, "costgp": 120, "botorch": 60, "grid": 672}


def optimum(space) -> float:
    """The surface's minimum over the space (epochs integer), by local search from many starts."""
    d = space.distributions
    best = float("inf")
    for e in range(d["epochs"].low, d["epochs"].high + 1):
        for r0 in (0.0, 0.3, 0.6):

            def f(x, e=e):
                p = {"learning_rate": 10 ** x[0], "weight_decay": 10 ** x[1], "epochs": e, "mix_ratio": x[2]}
                return synthetic.loss(p)

            bounds = [
                (math.log10(d["learning_rate"].low), math.log10(d["learning_rate"].high)),
                (math.log10(d["weight_decay"].low), math.log10(d["weight_decay"].high)),
                (d["mix_ratio"].low, d["mix_ratio"].high),
            ]
            best = min(best, minimize(f, [-2.3, 0.0, r0], bounds=bounds).fun)
    return best


def run(name: str, space, seed: int, target: float) -> tuple[int | None, float, float]:
    """(trials to reach target or None, tokens spent until then or in all, seconds)."""
    study = optuna.create_study(sampler=make_sampler(name, space, seed, cost=synthetic.train_tokens))
    spent, start = 0.0, time.perf_counter()
    for i in range(1, MAX_TRIALS[name] + 1):
        trial = study.ask(space.distributions)
        value = synthetic.loss(trial.params)
        study.tell(trial, value)
        spent += synthetic.train_tokens(trial.params)
        if value <= target:
            return i, spent, time.perf_counter() - start
    return None, spent, time.perf_counter() - start


def seconds_per_suggestion(name: str, space, history: int, asks: int = 5) -> tuple[float, float]:
    """(wall, CPU) seconds of one suggestion by sampler `name` once the study has `history` trials."""
    study = optuna.create_study(sampler=make_sampler(name, space, 0, cost=synthetic.train_tokens))
    filler = optuna.samplers.RandomSampler(seed=1)
    for _ in range(history):
        params = {k: filler.sample_independent(study, None, k, d) for k, d in space.distributions.items()}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=space.distributions, value=synthetic.loss(params))
        )
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(asks):
        trial = study.ask(space.distributions)
        study.tell(trial, synthetic.loss(trial.params))
    return (time.perf_counter() - wall) / asks, (time.process_time() - cpu) / asks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--samplers", nargs="*", default=["tpe", "gp", "costei", "botorch", "random", "grid"])
    parser.add_argument("--time-at", type=int, help="only time one suggestion after this many trials, per sampler")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = load_space("paper")
    if args.time_at:
        for name in args.samplers:
            wall, cpu = seconds_per_suggestion(name, space, args.time_at)
            print(f"{name}: {wall:.2f} s wall, {cpu:.2f} s CPU per suggestion after {args.time_at} trials")
        return
    best = optimum(space)
    target = best * (1 + TOLERANCE)
    sweep = optuna.create_study(sampler=make_sampler("grid", space, 0))
    for _ in range(grid_size(space)):
        trial = sweep.ask(space.distributions)
        sweep.tell(trial, synthetic.loss(trial.params))
    full_sweep = sum(synthetic.train_tokens(t.params) for t in sweep.trials)
    print(
        f"optimum {best:.4f}, target {target:.4f} (within {TOLERANCE:.1%}); grid: {grid_size(space)} points, "
        f"best {sweep.best_value:.4f}, full sweep {full_sweep / 1e6:.0f}M tokens"
    )
    rows = {}
    for name in args.samplers:
        seeds = range(args.seeds)
        results = [run(name, space, s, target) for s in seeds]
        reached = [r for r in results if r[0] is not None]
        rows[name] = {
            "reached": f"{len(reached)}/{len(results)}",
            "trials": statistics.median(r[0] for r in reached) if reached else float("nan"),
            "tokens": statistics.median(r[1] for r in reached) if reached else float("nan"),
            "s_per_trial": sum(r[2] for r in results) / sum((r[0] or MAX_TRIALS[name]) for r in results),
        }
        print(name, rows[name], flush=True)
    ref_grid = rows.get("grid", {}).get("tokens")
    ref_random = rows.get("random", {}).get("tokens")
    print("\n| sampler | reached | median trials | median tokens (M) | vs grid | random / this | s per trial |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        vs_grid = r["tokens"] / ref_grid if ref_grid else float("nan")
        vs_random = ref_random / r["tokens"] if ref_random else float("nan")
        print(
            f"| {name} | {r['reached']} | {r['trials']:.0f} | {r['tokens'] / 1e6:.1f} | {vs_grid:.1%} | "
            f"{vs_random:.1f}× | {r['s_per_trial']:.3f} |"
        )


if __name__ == "__main__":
    main()
