"""Sampler efficiency on synthetic data-constrained loss surfaces with known optima.

    .venv/bin/python benchmarks/samplers.py [--seeds 5] [--surfaces paper scarce no_mix sharp] [--target grid5]

For each surface of `synthetic.SURFACES` and each sampler (automix's own factory, over
search_spaces/paper.yaml) it counts the trials and the training tokens (the cost, T = E·U/(1−r) per
trial) spent until the best-so-far loss reaches the target, medians over seeds (a seed that never
reaches it counts as infinitely dear), and prints them as shares of a grid's tokens:
- `--target optimum`: within 0.5% of the surface's optimum, against the paper's 672-point grid;
- `--target grid5`: at or below the best of a 5⁴ grid (five values per axis, spread over each
  range), against that grid's tokens: what a user who would otherwise sweep a small grid saves.
The last table is the geometric mean over surfaces of each sampler's tokens relative to the best
sampler on that surface: how well a default carries from one surface to the others.
Samplers run through Optuna's ask/tell directly: this measures suggestion quality, not Ray.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from pathlib import Path

import optuna
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import SURFACES, Surface  # noqa: E402

from automix.config._space import SearchSpace, load_space  # noqa: E402
from automix.samplers import grid_values, make_sampler  # noqa: E402

TOLERANCE = 0.005
# automix's tpe is Optuna 5's TPESampler defaults (multivariate, constant liar): no separate "stock TPE".
MAX_TRIALS = {"tpe": 300, "costtpe": 300, "random": 3000}  # model-based samplers get 150
MODEL_TRIALS = 150


def optimum(space: SearchSpace, surface: Surface) -> float:
    """The surface's minimum over the space (epochs integer), by local search from many starts."""
    d = space.distributions
    bounds = [
        (math.log10(d["learning_rate"].low), math.log10(d["learning_rate"].high)),
        (math.log10(d["weight_decay"].low), math.log10(d["weight_decay"].high)),
        (d["mix_ratio"].low, d["mix_ratio"].high),
    ]
    best = float("inf")
    for e in range(d["epochs"].low, d["epochs"].high + 1):

        def f(x, e=e):
            return surface.loss(
                {"learning_rate": 10 ** x[0], "weight_decay": 10 ** x[1], "epochs": e, "mix_ratio": x[2]}
            )

        for x0 in itertools.product((-2.8, -2.0), (-1.5, 0.5), (0.0, 0.35, 0.7)):
            best = min(best, minimize(f, list(x0), bounds=bounds).fun)
    return best


def grid5(space: SearchSpace) -> list[dict]:
    """Five values per axis spread over each range (log where the range is log), on its steps."""
    axes = {}
    for name, d in space.distributions.items():
        lo, hi = (math.log(d.low), math.log(d.high)) if d.log else (d.low, d.high)
        values = [lo + (hi - lo) * k / 4 for k in range(5)]
        values = [math.exp(v) for v in values] if d.log else values
        if getattr(d, "step", None):
            values = [d.low + round((v - d.low) / d.step) * d.step for v in values]
        axes[name] = [int(round(v)) for v in values] if isinstance(d, optuna.distributions.IntDistribution) else values
    return [dict(zip(axes, point, strict=True)) for point in itertools.product(*axes.values())]


def run(name: str, space: SearchSpace, surface: Surface, seed: int, target: float) -> tuple[int | None, float, float]:
    """(trials to reach target or None, tokens spent until then or in all, seconds)."""
    study = optuna.create_study(sampler=make_sampler(name, space, seed, cost=surface.train_tokens))
    spent, start = 0.0, time.perf_counter()
    for i in range(1, MAX_TRIALS.get(name, MODEL_TRIALS) + 1):
        trial = study.ask(space.distributions)
        value = surface.loss(trial.params)
        study.tell(trial, value)
        spent += surface.train_tokens(trial.params)
        if value <= target:
            return i, spent, time.perf_counter() - start
    return None, spent, time.perf_counter() - start


def seconds_per_suggestion(name: str, space: SearchSpace, history: int, asks: int = 5) -> tuple[float, float]:
    """(wall, CPU) seconds of one suggestion by sampler `name` once the study has `history` trials."""
    surface = SURFACES["paper"]
    study = optuna.create_study(sampler=make_sampler(name, space, 0, cost=surface.train_tokens))
    filler = optuna.samplers.RandomSampler(seed=1)
    for _ in range(history):
        params = {k: filler.sample_independent(study, None, k, d) for k, d in space.distributions.items()}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=space.distributions, value=surface.loss(params))
        )
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(asks):
        trial = study.ask(space.distributions)
        study.tell(trial, surface.loss(trial.params))
    return (time.perf_counter() - wall) / asks, (time.process_time() - cpu) / asks


def target_and_grid(space: SearchSpace, surface: Surface, kind: str) -> tuple[float, float, str]:
    """(target loss, the reference grid's tokens, a line describing both)."""
    if kind == "grid5":
        points = grid5(space)
        best = min(surface.loss(p) for p in points)
        tokens = sum(surface.train_tokens(p) for p in points)
        return best, tokens, f"5^4 grid best {best:.4f}, {tokens / 1e6:.0f}M tokens"
    best = optimum(space, surface)
    points = [dict(zip(grid_values(space), p, strict=True)) for p in itertools.product(*grid_values(space).values())]
    tokens = sum(surface.train_tokens(p) for p in points)
    return (
        best * (1 + TOLERANCE),
        tokens,
        f"optimum {best:.4f}, target +{TOLERANCE:.1%}, {len(points)}-point grid {tokens / 1e6:.0f}M tokens",
    )


def measure(surface_name: str, names: list[str], space: SearchSpace, seeds: range, kind: str) -> dict[str, float]:
    """Print one surface's table; return each sampler's median tokens to the target (inf: not reached)."""
    surface = SURFACES[surface_name]
    target, grid_tokens, described = target_and_grid(space, surface, kind)
    print(f"\n### surface {surface_name}: {described}\n", flush=True)
    print("| sampler | reached | median trials | median tokens (M) | share of the grid's tokens | s per trial |")
    print("|---|---|---|---|---|---|")
    medians = {}
    for name in names:
        results = [run(name, space, surface, s, target) for s in seeds]
        reached = [r for r in results if r[0] is not None]
        medians[name] = statistics.median(r[1] if r[0] is not None else math.inf for r in results)
        trials = statistics.median(r[0] if r[0] is not None else math.inf for r in results)
        per_trial = sum(r[2] for r in results) / sum(r[0] or MAX_TRIALS.get(name, MODEL_TRIALS) for r in results)
        print(
            f"| {name} | {len(reached)}/{len(results)} | {trials:.0f} | {medians[name] / 1e6:.1f} | "
            f"{medians[name] / grid_tokens:.1%} | {per_trial:.3f} |",
            flush=True,
        )
    return medians


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed, ..., first-seed + seeds - 1")
    samplers = ["tpe", "costtpe", "gp", "robustgp", "costgp", "costei", "costtrend", "random"]
    parser.add_argument("--samplers", nargs="*", default=samplers)
    parser.add_argument("--surfaces", nargs="*", default=["paper"], choices=sorted(SURFACES))
    parser.add_argument("--target", choices=("optimum", "grid5"), default="optimum")
    parser.add_argument("--time-at", type=int, help="only time one suggestion after this many trials, per sampler")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = load_space("paper")
    if args.time_at:
        for name in args.samplers:
            wall, cpu = seconds_per_suggestion(name, space, args.time_at)
            print(f"{name}: {wall:.2f} s wall, {cpu:.2f} s CPU per suggestion after {args.time_at} trials")
        return
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    medians = {s: measure(s, args.samplers, space, seeds, args.target) for s in args.surfaces}
    print("\n| sampler | " + " | ".join(medians) + " | geometric mean |")
    print("|---|" + "---|" * (len(medians) + 1))
    for name in args.samplers:
        ratios = [m[name] / min(m.values()) for m in medians.values()]
        geo = math.exp(statistics.fmean(math.log(r) for r in ratios))
        print(f"| {name} | " + " | ".join(f"{r:.2f}×" for r in ratios) + f" | {geo:.2f}× |")


if __name__ == "__main__":
    main()
