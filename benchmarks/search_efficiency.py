"""Search efficiency on the real task: tokens until a finished trial is within 0.5% of a grid's best.

    .venv/bin/python benchmarks/search_efficiency.py --grid fixed_grid [--seeds 10] [--trials 40] [--methods ...]

The grids are exhaustive sweeps of real trainer runs of examples/ar_en_cpu.yaml whose learning
curves are committed in benchmarks/grids/ (benchmarks/_grids.py says how one is built and exported),
so this re-runs from a clone in minutes. Every search here is a real `automix.search_objective`
(Ray Tune, the Optuna sampler, the scheduler, an Optuna study) whose objective *replays* the grid: a
trial's params pick a grid point, and the trial reports that point's recorded curve
(target_val_loss at each evaluation, step = tokens, with `progress` and `decaying` as the trainer
reports them) and returns its final loss. The trainer is deterministic (same seed and config => same
losses), so a replayed trial reports exactly what training it again would, and a scheduler stops
it where it would. The space is the grid's index per axis (integers), so every sampler searches
exactly the grid's points.

Cost = tokens the trials trained (a stopped trial: up to its last report). Printed per method: how
many seeds got there within `--trials` trained trials and the median share of the exhaustive grid's
tokens (the grid must run every point to know its best), beside the oracle floor (the cheapest
qualifying point alone), the rule "train the dearest point at the example's defaults", and random
search's exact hit rate (a check of the harness). Trials run one at a time, so "until" is exact.
`--out FILE` writes every seed's tokens as JSON (benchmarks/fair_search.py reads them).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

import optuna
import optuna.distributions as od
import ray
from _common import EXAMPLE, ROOT, machine, print_table
from _grids import TOLERANCE, Grid, load
from curves import synthetic_grid
from optuna.trial import FrozenTrial, TrialState
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from automix.config._space import SearchSpace
from automix.config._study import SearchConfig, load_config
from automix.driver._search import search_objective
from automix.protocol import FINAL_KEY, REQUEUED_KEY, TRIAL_KEY, trained_tokens, user_params
from automix.samplers import make_sampler
from automix.scheduling._schedulers import checkpoint_cadence, make_scheduler
from automix.scheduling._searcher import StudySearcher
from automix.trial import Reporter

METRIC = "target_val_loss"


@dataclass(frozen=True)
class Method:
    """A search as a user of automix configures it: sampler, scheduler, the scheduler's axis."""

    label: str
    sampler: str
    scheduler: str = "asha"
    fidelity: str = "progress"
    rungs: int | None = 1
    thaw: bool = True  # False: a pruned point proposed again trains from scratch (before freeze-thaw)

    @property
    def key(self) -> str:
        return f"{self.sampler}-{self.scheduler}-{self.fidelity}-{self.rungs}{'' if self.thaw else '-nothaw'}"


TOKENS_EVERY_RUNG = {"fidelity": "tokens", "rungs": None}  # automix's early stopping before 2026-12
METHODS = (
    Method("automix default: tpe + asha (progress, 1 rung)", "tpe"),
    Method("robustgp + asha (progress, 1 rung)", "robustgp"),
    Method("robustgp + asha (tokens, every rung): the default before", "robustgp", **TOKENS_EVERY_RUNG),
    Method("robustgp, no early stopping", "robustgp", "none"),
    Method("random", "random", "none"),
    Method("random + asha (progress, 1 rung)", "random"),
    Method("random + asha (tokens, every rung)", "random", **TOKENS_EVERY_RUNG),
    Method("random + asha (progress, every rung)", "random", rungs=None),
    Method("tpe, no early stopping", "tpe", "none"),
    Method("gp + asha (progress, 1 rung)", "gp"),
    Method("gp, no early stopping", "gp", "none"),
    Method("costtrend + asha (progress, 1 rung)", "costtrend"),
    Method("costtrend, no early stopping", "costtrend", "none"),
)


@dataclass
class GridReplay:
    """Objective that replays the grid's recorded curves; params are grid indices per axis.

    It checkpoints as the trainer does (`cadence`, saved before the report; here a file with the
    position in `checkpoints`), and a trial that continues another (`report.requeued_from`: a
    pruned point proposed again) replays only the rest of the curve and reports what it trained.
    """

    grid: Grid
    cadence: int
    checkpoints: Path
    thaw: bool = True

    def __call__(self, params: dict, report) -> dict[str, float]:
        curve = self.grid.curves[self._index(params)]
        start, next_checkpoint = self._resumed(report.requeued_from if self.thaw else None)
        for i, (tokens, loss) in enumerate(curve, 1):
            if tokens <= start:
                continue
            if tokens >= next_checkpoint and i < len(curve):
                next_checkpoint = (tokens // self.cadence + 1) * self.cadence
                self._save(report.trial_number, tokens, next_checkpoint)
            # as the trainer reports it, to an evaluation
            decaying = tokens > (1 - self.grid.decay_frac) * curve[-1][0]
            metrics = {"tokens": tokens, "trained_tokens": tokens - start, METRIC: loss}
            report({**metrics, "progress": tokens / curve[-1][0], "decaying": decaying})
        tokens, loss = curve[-1]
        return {"tokens": tokens, "trained_tokens": tokens - start, METRIC: loss}

    def _index(self, params: dict) -> tuple[int, ...]:
        return tuple(int(params[name]) for name in self.grid.axes)

    def _save(self, trial: int, tokens: int, next_checkpoint: int) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        (self.checkpoints / f"{trial}.json").write_text(json.dumps([tokens, next_checkpoint]))

    def _resumed(self, trial: int | None) -> tuple[int, int]:
        path = self.checkpoints / f"{trial}.json"
        return tuple(json.loads(path.read_text())) if trial is not None and path.is_file() else (0, self.cadence)

    def cost(self, params: dict) -> float:
        """A point's training tokens, known before it trains (T), as automix's plan knows it."""
        return self.grid.cost(self._index(params))


class _Stopped(Exception):
    """The scheduler stopped the trial at its last report (Ray ends a stopped function trial there)."""


@dataclass(frozen=True)
class _Trial:
    """What Ray's schedulers read of a trial: its id and config."""

    trial_id: str
    config: dict


def drive_in_process(searcher: StudySearcher, scheduler, replay: GridReplay) -> None:
    """One trial at a time, the calls Ray Tune's controller makes, without Ray: the same searcher and
    scheduler objects as `automix.search`, in the order Ray calls them (a result goes to the
    scheduler first, and to the searcher only if the trial goes on; a stopped or finished trial
    ends with `on_trial_complete` on both). Tokens per seed match the Ray runs (`--driver ray`)."""
    for number in itertools.count():
        trial_id = f"t{number}"
        config = searcher.suggest(trial_id)
        if config == Searcher.FINISHED or config is None:
            return
        trial = _Trial(trial_id, config)
        scheduler.on_trial_add(None, trial)
        last: dict = {}

        def sink(metrics: dict, trial=trial) -> None:
            nonlocal last
            last = metrics
            if scheduler.on_trial_result(None, trial, metrics) == TrialScheduler.STOP:
                raise _Stopped
            searcher.on_trial_result(trial.trial_id, metrics)

        reporter = Reporter(config.get(TRIAL_KEY), sink, config.get(REQUEUED_KEY))
        try:
            final = replay(user_params(config), reporter)
            sink({**reporter.last, **final, FINAL_KEY: 1.0})
        except _Stopped:
            pass
        scheduler.on_trial_complete(None, trial, last)
        searcher.on_trial_complete(trial_id, last)


def grid_space(grid: Grid) -> SearchSpace:
    """The grid's index per axis: every sampler searches exactly the grid's points."""
    return SearchSpace({n: od.IntDistribution(0, len(v) - 1) for n, v in grid.axes.items()}, source="grid indices")


def search_settings(method: Method, grid: Grid, seed: int, trials: int) -> dict:
    """The search settings both drivers use: as the example's own search plans it (the first
    tokens-axis rung at 2 evaluations, max_train_tokens = the largest T), one trial at a time."""
    largest = int(max(c[-1][0] for c in grid.curves.values()))
    return {
        "sampler": method.sampler, "scheduler": method.scheduler, "fidelity": method.fidelity,
        "rungs": method.rungs, "seed": seed, "n_trials": trials, "grace_tokens": 2 * grid.eval_every,
        "max_train_tokens": largest, "concurrency": 1,
    }  # fmt: skip


def checkpoints_of(method: Method, grid: Grid) -> int | None:
    """The trials' checkpoint cadence under this method, as automix's plan sets it."""
    example = load_config(EXAMPLE, grid.overrides)
    update = {"scheduler": method.scheduler, "fidelity": method.fidelity, "rungs": method.rungs}
    settings = example.search.model_copy(update=update)
    return checkpoint_cadence(settings, grid.eval_every, example.checkpoint_every_tokens)


def run_in_process(method: Method, grid: Grid, seed: int, trials: int, work: Path) -> list[FrozenTrial]:
    """The trials of one search driven in process (`drive_in_process`), in order."""
    space, replay = grid_space(grid), GridReplay(grid, checkpoints_of(method, grid), work / "checkpoints", method.thaw)
    settings = SearchConfig(metric=METRIC, **search_settings(method, grid, seed, trials))
    searcher = StudySearcher(
        space.distributions, METRIC, "min", sampler=make_sampler(method.sampler, space, seed, cost=replay.cost),
        cost=replay.cost, max_cost=settings.max_train_tokens, target=trials, seed=seed,
    )  # fmt: skip
    drive_in_process(searcher, make_scheduler(settings, settings.max_train_tokens, grid.eval_every), replay)
    return sorted(searcher.study.trials, key=lambda t: t.number)


def run_with_ray(method: Method, grid: Grid, seed: int, trials: int, work: Path) -> list[FrozenTrial]:
    """The trials of one real `automix.search_objective` (Ray Tune) replaying the grid, in order."""
    replay = GridReplay(grid, checkpoints_of(method, grid), work / "checkpoints", method.thaw)
    result = search_objective(
        replay, grid_space(grid), study=f"eff-{method.key}-{seed}", work_dir=work, verbose=False,
        metric=METRIC, cost=replay.cost, **search_settings(method, grid, seed, trials),
    )  # fmt: skip
    return sorted(result.study.trials, key=lambda t: t.number)


DRIVERS = {"ray": run_with_ray, "in-process": run_in_process}


def tokens_until(trials: list[FrozenTrial], target: float, cap: float = math.inf) -> float:
    """Tokens trained by `trials` in order until a finished one is within the target (inf if none is
    within `cap` tokens)."""
    spent = 0.0
    for trial in trials:
        spent += trained_tokens(trial.user_attrs)
        if spent > cap:
            return math.inf
        if trial.state == TrialState.COMPLETE and trial.value <= target:
            return spent
    return math.inf


def random_hit_rate(grid: Grid, trials: int) -> float:
    """The chance that `trials` distinct points drawn uniformly from the grid include a qualifying one
    (automix's random search: a point trained to its end is never trained again)."""
    n, k = len(grid.curves), len(grid.qualifying())
    return 1.0 - math.comb(n - k, trials) / math.comb(n, trials) if trials <= n else 1.0


def run_method(
    method: Method, grid: Grid, seeds: range, trials: int, driver: str = "ray", cap: float = math.inf
) -> list[float]:
    """Each seed's tokens until the target (inf: not reached within `trials`), searched through Ray
    Tune (`automix.search_objective`) or by the same searcher and scheduler in process."""
    costs = []
    for seed in seeds:
        work = ROOT / "runs" / "bench_efficiency" / grid.name / f"{method.key}-{seed}"
        shutil.rmtree(work, ignore_errors=True)  # each search starts a fresh study
        costs.append(tokens_until(DRIVERS[driver](method, grid, seed, trials, work), grid.target, cap))
        shutil.rmtree(work, ignore_errors=True)
        print(f"{method.label} seed {seed}: {costs[-1] / 1e6:.2f}M tokens ({costs[-1] / grid.total:.1%})", flush=True)
    return costs


def row(label: str, costs: list[float], total: float) -> tuple:
    hits = [c for c in costs if math.isfinite(c)]
    median = statistics.median(costs)
    share = f"{median / total:.1%}" if math.isfinite(median) else "-"
    return label, f"{len(hits)}/{len(costs)}", share, f"{statistics.median(hits) / total:.1%}" if hits else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--grid", default="fixed_grid", help="a grid in benchmarks/grids/ (name or path), or synthetic:SURFACE"
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=40, help="trained trials per search")
    parser.add_argument("--methods", nargs="*", help="labels of METHODS to run (default: all)")
    parser.add_argument(
        "--driver", choices=tuple(DRIVERS), default="ray", help="Ray Tune, or the same objects without Ray"
    )
    parser.add_argument(
        "--token-cap", type=float, help="count a seed only if it reached the target within the tokens that "
        "this many trials of the grid's mean T cost (random search's budget at equal tokens; raise --trials)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="write {method: [tokens per seed]} here as JSON")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid = synthetic_grid(args.grid.split(":", 1)[1]) if args.grid.startswith("synthetic:") else load(args.grid)
    rule = grid.dearest_at_defaults()
    print(f"{machine()}; grid {grid.name}: {len(grid.curves)} points, {grid.total / 1e6:.1f}M tokens")
    floor = grid.oracle_floor() / grid.total
    print(
        f"best {grid.best:.4f}, target <= {grid.target:.4f}: {len(grid.qualifying())} qualify; oracle floor {floor:.1%}"
    )
    print(f"random search's exact chance to reach it in {args.trials} trials: {random_hit_rate(grid, args.trials):.3f}")
    if args.driver == "ray":
        # one Ray for all searches, its own: a bare init() joins another running cluster
        ray.init(address="local", include_dashboard=False, logging_level="WARNING")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    results = {}
    for method in METHODS:
        if not args.methods or method.label in args.methods:
            cap = args.token_cap * grid.total / len(grid.curves) if args.token_cap else math.inf
            results[method.label] = run_method(method, grid, seeds, args.trials, args.driver, cap)
    if args.driver == "ray":
        ray.shutdown()
    if args.out:  # the record peers.py writes too (benchmarks/fair_search.py reads both)
        methods = {label: {"tokens": tokens} for label, tokens in results.items()}
        record = {"total_tokens": grid.total, "oracle_floor_tokens": grid.oracle_floor(), "methods": methods}
        args.out.write_text(json.dumps({"tolerance": TOLERANCE, "grids": {grid.name: record}}, indent=1) + "\n")
    rows = [row(label, costs, grid.total) for label, costs in results.items()]
    hit = grid.final(rule) <= grid.target
    rule_share = f"{grid.cost(rule) / grid.total:.1%}" if hit else "-"
    rows.append(("rule: the dearest point at the defaults", f"{int(hit)}/1", rule_share, ""))
    rows.append(("oracle floor: the cheapest qualifying point alone", "-", f"{floor:.1%}", ""))
    print_table(
        f"{grid.name}: tokens until a finished trial <= grid best + 0.5% ({args.seeds} seeds, <= {args.trials} trials)",
        ["method", "seeds reaching it", "median share of the grid's tokens", "median over the seeds reaching it"],
        rows,
    )


if __name__ == "__main__":
    main()
