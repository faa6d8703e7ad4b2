"""Search efficiency on the real task: tokens until the best-so-far loss is within 0.5% of a grid's best.

    # 1. the exhaustive grid: real trainer runs of examples/ar_en_cpu.yaml (41 min on 2 cores)
    .venv/bin/automix search examples/ar_en_cpu.yaml study=real_grid work_dir=runs/real_grid \\
        search.space=benchmarks/spaces/real_grid.yaml search.sampler=grid search.n_trials=96 search.scheduler=none
    # 2. the comparison (~3 min per method at 10 seeds)
    .venv/bin/python benchmarks/search_efficiency.py [--grid runs/real_grid] [--seeds 10] [--trials 40]

A second grid of the same axes at another U (the method was not developed on it), a quarter of the
tokens with the same number of evaluations per trial:
    .venv/bin/automix search examples/ar_en_cpu.yaml study=real_grid_u25k work_dir=runs/real_grid_u25k \\
        search.space=benchmarks/spaces/real_grid.yaml search.sampler=grid search.n_trials=96 search.scheduler=none \\
        budget.unique_tokens=25000 eval_every_tokens=62500 optim.warmup_tokens=12500
    .venv/bin/python benchmarks/search_efficiency.py --grid runs/real_grid_u25k \\
        --set budget.unique_tokens=25000 eval_every_tokens=62500 optim.warmup_tokens=12500

Every search here is a real `automix.search` (Ray Tune, the Optuna sampler, ASHA, an Optuna study)
whose objective *replays* the grid: a trial's params pick a grid point, and the trial reports that
point's recorded learning curve (target_val_loss at each evaluation, step = tokens) and returns its
final loss. The trainer is deterministic (same seed and config => same losses), so a replayed trial
reports exactly what training it again would, and ASHA stops it at the same rung. The space is the
grid's index per axis (integers), so every sampler searches exactly the grid's points.

Cost = tokens the trials trained (a stopped trial: up to its last report). Printed per method: median
over seeds of the tokens spent until a finished trial is within 0.5% of the grid's best, that cost as
a share of the exhaustive grid's tokens (the grid must run every point to know its best), and how many
seeds got there within `--trials`. Trials run one at a time, so "until" is exact.
"""

from __future__ import annotations

import argparse
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
from optuna.trial import FrozenTrial, TrialState

from automix.config._space import SearchSpace, load_space
from automix.config._study import load_config
from automix.engine._schedulers import checkpoint_cadence
from automix.engine._search import search_objective
from automix.engine._searcher import earlier_reports
from automix.protocol import REQUEUED_FROM, trained_tokens

TOLERANCE = 0.005
METRIC = "target_val_loss"
# (label, sampler, scheduler): automix's default, the other model-based samplers, random search with and without ASHA.
# "no freeze-thaw": a pruned point proposed again trains from scratch (automix before 2026-11-30).
METHODS = (
    ("automix default: robustgp + asha", "robustgp", "asha"),
    ("robustgp + asha, no freeze-thaw", "robustgp", "asha"),
    ("gp + asha, no freeze-thaw", "gp", "asha"),
    ("gp + asha", "gp", "asha"),
    ("tpe + asha", "tpe", "asha"),
    ("costtpe + asha", "costtpe", "asha"),
    ("costei + asha", "costei", "asha"),
    ("costtrend + asha", "costtrend", "asha"),
    ("costei, no scheduler", "costei", "none"),
    ("costgp + asha", "costgp", "asha"),
    ("gp, no scheduler", "gp", "none"),
    ("gp + median stopping", "gp", "median"),
    ("random", "random", "none"),
    ("random + asha", "random", "asha"),
)


@dataclass
class GridReplay:
    """Objective that replays the grid's recorded curves; params are grid indices per axis.

    It checkpoints as the trainer does (`cadence`, saved before the report; here a file with the
    position in `checkpoints`), and a trial that continues another (`report.requeued_from`: a
    pruned point proposed again) replays only the rest of the curve and reports what it trained.
    """

    axes: dict[str, list]
    curves: dict[tuple[int, ...], list[tuple[int, float]]]
    decay_frac: float
    cadence: int
    checkpoints: Path
    thaw: bool = True  # False: a continued trial starts from scratch, as before freeze-thaw

    def __call__(self, params: dict, report) -> dict[str, float]:
        curve = self.curves[tuple(int(params[name]) for name in self.axes)]
        start, next_checkpoint = self._resumed(report.requeued_from if self.thaw else None)
        for i, (tokens, loss) in enumerate(curve, 1):
            if tokens <= start:
                continue
            if tokens >= next_checkpoint and i < len(curve):
                next_checkpoint = (tokens // self.cadence + 1) * self.cadence
                self._save(report.trial_number, tokens, next_checkpoint)
            decaying = tokens > (1 - self.decay_frac) * curve[-1][0]  # as the trainer reports it, to an evaluation
            metrics = {"tokens": tokens, "trained_tokens": tokens - start, METRIC: loss}
            report({**metrics, "progress": i / len(curve), "decaying": decaying})
        tokens, loss = curve[-1]
        return {"tokens": tokens, "trained_tokens": tokens - start, METRIC: loss}

    def _save(self, trial: int, tokens: int, next_checkpoint: int) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        (self.checkpoints / f"{trial}.json").write_text(json.dumps([tokens, next_checkpoint]))

    def _resumed(self, trial: int | None) -> tuple[int, int]:
        path = self.checkpoints / f"{trial}.json"
        return tuple(json.loads(path.read_text())) if trial is not None and path.is_file() else (0, self.cadence)

    def cost(self, params: dict) -> float:
        """A point's training tokens, known before it trains (T = E·U/(1-r)), as automix's plan knows it."""
        return float(self.curves[tuple(int(params[name]) for name in self.axes)][-1][0])


def grid_trials(work: Path) -> list[FrozenTrial]:
    """The trials of the grid study in `work`, in the order they finished."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{work / 'optuna.db'}")
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    return sorted(trials, key=lambda t: t.datetime_complete or t.datetime_start)


def load_grid(trials: list[FrozenTrial], space_path: Path) -> tuple[dict[str, list], dict, float, float]:
    """The grid's axes, each point's curve [(tokens, loss), ...], its best loss and its total tokens."""
    axes = {name: list(values) for name, values in load_space(space_path).grid.items()}
    by_number = {trial.number: trial for trial in trials}
    curves = {}
    for trial in trials:
        on_grid = all(trial.params[name] in values for name, values in axes.items())
        if trial.state != TrialState.COMPLETE or not on_grid:  # off the grid: a resume before 2026-11-30's fix
            continue
        index = tuple(values.index(trial.params[name]) for name, values in axes.items())
        tokens = int(trial.user_attrs["tokens"])
        reports = dict(trial.intermediate_values)
        # A point re-queued after a crash continued the crashed trial's checkpoint: its curve starts
        # with the crashed trial's reports (the trainer resumes bit for bit).
        if (crashed := by_number.get(trial.user_attrs.get(REQUEUED_FROM))) is not None:
            reports |= earlier_reports(reports, crashed.intermediate_values)
        steps = [(int(s), float(v)) for s, v in sorted(reports.items()) if s < tokens]
        curves[index] = [*steps, (tokens, float(trial.value))]
    expected = math.prod(len(v) for v in axes.values())
    if len(curves) != expected:
        raise SystemExit(f"{len(curves)} finished grid points of {expected}: run the grid first (see --help)")
    best = min(c[-1][1] for c in curves.values())
    total = sum(c[-1][0] for c in curves.values())
    return axes, curves, best, total


def tokens_until(trials: list[FrozenTrial], target: float) -> float:
    """Tokens trained by `trials` in order until a finished one is within the target (inf if none is)."""
    spent = 0.0
    for trial in trials:
        spent += trained_tokens(trial.user_attrs)
        if trial.state == TrialState.COMPLETE and trial.value <= target:
            return spent
    return math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=Path, default=ROOT / "runs" / "real_grid", help="work dir of the grid study")
    parser.add_argument("--space", type=Path, default=ROOT / "benchmarks" / "spaces" / "real_grid.yaml")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=40, help="trials per search")
    parser.add_argument("--methods", nargs="*", help="labels of METHODS to run (default: all)")
    parser.add_argument("--set", nargs="*", default=[], help="key=value overrides of the example config the grid ran")
    args = parser.parse_args()
    grid = grid_trials(args.grid)
    axes, curves, best, total = load_grid(grid, args.space)
    target = best * (1 + TOLERANCE)
    near = sum(c[-1][1] <= target for c in curves.values())
    space = SearchSpace({name: od.IntDistribution(0, len(v) - 1) for name, v in axes.items()}, source="grid indices")
    # As the example's own search plans it: ASHA's first rung at 2 evaluations, max_t = the largest T = E·U/(1-r).
    example = load_config(EXAMPLE, args.set)
    largest = int(example.budget.unique_tokens * max(axes["epochs"]) / (1 - max(axes["mix_ratio"])))
    fixed = {
        "grace_tokens": 2 * example.eval_every_tokens,
        "max_train_tokens": largest,
        "concurrency": 1,
        "n_trials": args.trials,
    }
    print(f"{machine()}; grid {args.grid}: {len(curves)} points, {total / 1e6:.1f}M tokens, best {best:.4f}, ")
    print(f"target <= {target:.4f} (best + {100 * TOLERANCE:.1f}%): {near} of {len(curves)} points qualify")
    ray.init(include_dashboard=False, logging_level="WARNING")  # one Ray for all searches
    rows = []
    for label, sampler, scheduler in METHODS:
        if args.methods and label not in args.methods:
            continue
        costs = []
        settings = example.search.model_copy(update={"scheduler": scheduler, **fixed})
        cadence = checkpoint_cadence(settings, example.eval_every_tokens, example.checkpoint_every_tokens)
        for seed in range(args.seeds):
            thaw = "no freeze-thaw" not in label
            name = f"{sampler}-{scheduler}{'' if thaw else '-nothaw'}-{seed}"
            work = ROOT / "runs" / "bench_efficiency" / args.grid.name / name
            shutil.rmtree(work, ignore_errors=True)  # each search starts a fresh study
            replay = GridReplay(axes, curves, example.optim.decay_frac, cadence, work / "replay_checkpoints", thaw)
            result = search_objective(
                replay, space, study=f"eff-{sampler}-{scheduler}-{seed}", work_dir=work, verbose=False,
                sampler=sampler, scheduler=scheduler, seed=seed, cost=replay.cost, **fixed,
            )  # fmt: skip
            costs.append(tokens_until(sorted(result.study.trials, key=lambda t: t.number), target))
            print(f"{label} seed {seed}: {costs[-1] / 1e6:.2f}M tokens ({100 * costs[-1] / total:.1f}%)", flush=True)
        hits = [c for c in costs if math.isfinite(c)]
        median = statistics.median(costs)
        rows.append(
            (label, f"{len(hits)}/{len(costs)}", f"{median / 1e6:.1f}M", f"{100 * median / total:.1f}%")
            if math.isfinite(median)
            else (label, f"{len(hits)}/{len(costs)}", "not reached", "-")
        )
    ray.shutdown()
    in_order = tokens_until(grid, target)
    rows.append(("grid, in the order it ran", "1/1", f"{in_order / 1e6:.1f}M", f"{100 * in_order / total:.1f}%"))
    rows.append(("grid, exhaustive (knows its best)", "-", f"{total / 1e6:.1f}M", "100%"))
    print_table(
        f"tokens until best-so-far <= grid best + 0.5% ({args.seeds} seeds, <= {args.trials} trials each)",
        ["method", "seeds reaching it", "median tokens", "share of the grid's tokens"],
        rows,
    )


if __name__ == "__main__":
    main()
