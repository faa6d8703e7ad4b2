"""Transfer across data budgets (issue 25, item 3): where the best weight decay sits as U grows, and whether E carries.

    flock /tmp/automix-cpu.lock .venv/bin/python benchmarks/budget_transfer.py [--tiny] [--estimate]

The proxy is examples/levers/joint.yaml's base: w64 d2 μP, batch 4, seq 128, lr 3e-3, r = 0, warmup
50k tokens, linear decay over the last 20% of T; one width up is w128 (μP, lr and wd stated at width 64).

1. wd × U at E = 16 (T = 16·U): wd on a 3× grid 0.01 … 3, U ∈ {25k, 50k, 100k, 200k} at w64 and
   {25k, 50k, 100k} at w128, seeds 0, 1 and 2 (two seeds took 28 min on 2 cores, 2026-12-06; U = 200k
   at w128 as well would add about 0.9 CPU-hours). For each (width, U): the best wd of the seed-mean
   loss, refined to the vertex of a parabola in log wd through it and its neighbours, and where that optimum sits
   in AdamW's timescale τ = 1/(lr·wd): in steps (lr·wd is PyTorch AdamW's per-step decay, the same
   at every width under μP: MuAdamW gives hidden matrices lr/m and wd·m), in tokens
   (τ·batch·seq_len), in epochs over U, and as a share of T beside the tokens per parameter T/N
   ("Power Lines", Bergsma et al. 2025, arXiv 2505.13738).
2. The rules, fitted on each width's smaller U's and asked for its largest: (a) τ constant in epochs
   (wd ∝ 1/U at fixed lr and E: the rule `automix transfer --unique-tokens / --train-tokens`
   applies), (b) wd constant, (c) τ/T a power law in tokens per parameter (per width, and across
   both widths, where N differs too); and the code's own rule (`target_config`) from the proxy's
   smallest U. Goal: the predicted wd within one 3× grid step of the sweep's best.
3. Epochs: E ∈ {8, 16, 32} at w64 at U = 25k and 100k, each at that U's best wd at E = 16. Does the
   best E, or the best E·U, carry from the smaller U to the larger?

Each run: shared corpora, byte-level, Arabic target loss on 32k validation tokens, one evaluation at
the end (no multiple-choice sets), 2 runs at a time with one thread each. Resumable: each finished
run's final loss is cached under its config's fingerprint in runs/budget_transfer/runs/, so a second
call (after a crash, or with a wider grid) trains only what is missing; every loss, optimum and
prediction is written to runs/budget_transfer/budget_transfer.json. `--tiny` runs a few steps at
tiny sizes into runs/budget_transfer_tiny (does the script work); `--estimate` times a few steps of
each width and prints the CPU time the full benchmark needs.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _budget_rules import RULES, judge, n_params, optimum, predict, timescale
from _common import ROOT, print_table
from _sweeps import step_seconds, sweep_main

from automix.config._study import StudyConfig, load_config
from automix.scaling._transfer import target_config, with_values
from automix.scaling._verify import final_losses
from automix.study import Workspace
from trainer.atomic import write_json
from trainer.budget import train_tokens
from trainer.config import TrainConfig
from trainer.data import prepare

JOINT = ROOT / "examples" / "levers" / "joint.yaml"
KEYS = ["width", "U", "epochs"]  # one wd curve: a cell of the sweep


@dataclass(frozen=True)
class Plan:
    """The grids one benchmark run covers; the smallest width is the proxy."""

    name: str
    units: Mapping[int, tuple[int, ...]]  # width → the unique-token budgets U swept at it
    wds: tuple[float, ...]  # 3× steps
    seeds: tuple[int, ...]
    epochs: float  # E of the wd × U sweep
    epoch_units: tuple[int, ...]  # the U's of the E check, at the proxy width
    epoch_grid: tuple[float, ...]
    overrides: tuple[str, ...]

    @property
    def proxy_width(self) -> int:
        """The proxy's width: the smallest swept."""
        return min(self.units)

    def config(self) -> StudyConfig:
        """joint.yaml with the plan's overrides in runs/<name>, kept between calls: the cache is the resume."""
        work = ROOT / "runs" / self.name
        return load_config(JOINT, [f"study={self.name}", f"work_dir={work}", *self.overrides])


RUN = (
    "eval_every_tokens=1000000000",  # one evaluation, at the end
    "data.eval_sets={}",  # the loss is what is measured: no multiple-choice scoring
    "data.aux_eval_sets={}",
    "budget.mix_ratio=0.0",
    "search.concurrency=2",
    "search.cpus_per_trial=1",
)
FULL = Plan(
    "budget_transfer",
    # U = 200k at w128 too would add 12 runs and ~0.9 CPU-hours (cached runs are kept: add it later)
    {64: (25_000, 50_000, 100_000, 200_000), 128: (25_000, 50_000, 100_000)},
    (0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
    (0, 1, 2),  # a third seed: two left w128's U = 100k flat within noise from wd 0.01 to 0.3
    16,
    (25_000, 100_000),
    (8, 16, 32),
    RUN,
)
TINY = Plan(
    "budget_transfer_tiny",
    {16: (1024, 2048, 4096), 32: (1024, 2048)},
    (3.0, 10.0, 30.0),  # a tiny run is short next to τ: only large wds move its loss
    (0, 1),
    2,
    (1024, 2048),
    (1, 2, 4),
    (*RUN, "model.width=16", "model.base_width=16", "optim.warmup_tokens=256", "data.valid_tokens=1024"),
)


def points(plan: Plan, epoch_wds: Mapping[int, float] | None = None) -> pd.DataFrame:
    """The sweep's runs (width, U, epochs, wd, seed), or with `epoch_wds` (U → wd) the E check's."""
    if epoch_wds is None:
        rows = [
            (w, u, plan.epochs, wd, s)
            for w, units in plan.units.items()
            for u, wd, s in itertools.product(units, plan.wds, plan.seeds)
        ]
    else:
        rows = [
            (plan.proxy_width, u, e, epoch_wds[u], s)
            for u, e, s in itertools.product(plan.epoch_units, plan.epoch_grid, plan.seeds)
        ]
    return pd.DataFrame(rows, columns=[*KEYS, "wd", "seed"])


def run_config(base: TrainConfig, point: Mapping) -> TrainConfig:
    """The trainer config of one point of `points`."""
    values = {
        "model.width": int(point["width"]),
        "budget.unique_tokens": int(point["U"]),
        "budget.epochs": float(point["epochs"]),
        "weight_decay": float(point["wd"]),
        "seed": int(point["seed"]),
    }
    return with_values(base, values)


def train(plan: Plan, todo: pd.DataFrame) -> pd.DataFrame:
    """`todo` with each run's final target_val_loss (inf if it diverged), trained or read from the cache."""
    config = plan.config()
    base = with_values(config.base_train_config(), {"threads": 1})
    configs = [run_config(base, p) for _, p in todo.iterrows()]
    prepare(max(configs, key=lambda c: c.budget.unique_tokens))  # tokenize once; fail on too small a corpus first
    # longest first (steps × width, roughly the cost), so the pool's last runs end together
    order = sorted(range(len(configs)), key=lambda i: -configs[i].budget.total_tokens * configs[i].model.width)
    cache = Workspace.from_config(config).path("runs")
    losses = final_losses([configs[i] for i in order], cache, config.search.concurrency, _trained)
    return todo.iloc[order].assign(loss=losses).reset_index(drop=True)


def _trained(config: TrainConfig, loss: float) -> None:
    """One line per newly trained run: a long sweep shows its progress."""
    b = config.budget
    print(
        f"w{config.model.width} U={b.unique_tokens} E={b.epochs:g} wd={config.optim.weight_decay:g} "
        f"seed={config.seed} target_val_loss={loss:.4f}",
        flush=True,
    )


def optima(runs: pd.DataFrame, base: TrainConfig) -> pd.DataFrame:
    """One row per (width, U, E): the grid's best wd of the seed-mean loss, the refined optimum and its τ.

    Args:
        runs: one row per run: width, U, epochs, wd, seed, loss.
        base: the runs' base trainer config (lr, batch, sequence length).

    Returns:
        width, U, epochs, train_tokens, tpp (T/N, N all parameters), best_wd and best_loss (the
        grid's), refined_wd and edge (`optimum`), se and near (the wds whose seed-mean loss is within
        one standard error of a difference of two seed means of the best, the seeds' variance pooled
        over the curve: the optimum's noise band), and tau_steps, tau_tokens, tau_epochs, tau_share
        at the refined optimum (`timescale`).
    """
    rows = []
    for key, cell in runs.groupby(KEYS):
        curve = cell.groupby("wd").loss.agg(["mean", "std", "count"]).sort_index()
        wds, mean = curve.index.to_numpy(), curve["mean"].to_numpy()
        refined, edge = optimum(wds, mean)
        se = math.sqrt(2 * np.nanmean(curve["std"].to_numpy() ** 2) / curve["count"].min())
        config = run_config(base, {**dict(zip(KEYS, key, strict=True)), "wd": refined, "seed": 0})
        best = wds[int(np.argmin(mean))]
        near = [f"{w:g}" for w, m in zip(wds, mean, strict=True) if m <= mean.min() + se]
        tau = timescale(config, refined)
        tpp = config.budget.total_tokens / n_params(config)
        rows.append(
            {
                **dict(zip(KEYS, key, strict=True)),
                "train_tokens": config.budget.total_tokens,
                "tpp": tpp,
                "best_wd": float(best),
                "best_loss": float(mean.min()),
                "refined_wd": refined,
                "edge": edge,
                "se": se,
                "near": near,
                **{f"tau_{unit}": v for unit, v in tau.items()},
            }
        )
    return pd.DataFrame(rows)


def report_sweep(plan: Plan, runs: pd.DataFrame, best: pd.DataFrame) -> None:
    """Loss vs wd and U per width, then each cell's optimum in τ units."""
    best_wd = best.set_index(["width", "U"]).best_wd
    table = runs.groupby(["width", "wd", "U"]).loss.agg(["mean", "std"])
    for width, units in plan.units.items():
        rows = []
        for wd in plan.wds:
            cells = [table.loc[(width, wd, u)] for u in units]
            bold = ["**" if wd == best_wd[(width, u)] else "" for u in units]
            rows.append(
                [f"{wd:g}", *(f"{b}{c['mean']:.4f}{b} ± {c['std']:.4f}" for c, b in zip(cells, bold, strict=True))]
            )
        print_table(
            f"w{width}, E = {plan.epochs:g}: target_val_loss vs wd (rows) and U (columns), mean ± sd of "
            f"{len(plan.seeds)} seeds (best in bold)",
            ["wd", *(f"U {u:,}" for u in units)],
            rows,
        )
    print_table(
        f"Best wd per width and U (E = {plan.epochs:g}); τ = 1/(lr·wd) at the refined optimum",
        ["width", "U", "T/N", "best wd (grid)", "refined", "within noise", "τ steps", "τ epochs", "τ tokens", "τ/T"],
        [
            [
                f"w{r.width}",
                f"{r.U:,}",
                f"{r.tpp:.3g}",
                f"{r.best_wd:g}" + (" (edge)" if r.edge else ""),
                f"{r.refined_wd:.3g}",
                ", ".join(r.near),
                f"{r.tau_steps:.0f}",
                f"{r.tau_epochs:.3g}",
                f"{r.tau_tokens:.3g}",
                f"{r.tau_share:.3g}",
            ]
            for r in best.itertuples()
        ],
    )
    print("\nwithin noise: the wds whose seed-mean loss is within one standard error of a difference of the best")
    if best.edge.any():
        print("edge: the grid's best is its first or last wd; widen the grid (the cached runs are kept)")


def rule_predictions(plan: Plan, runs: pd.DataFrame, best: pd.DataFrame, base: TrainConfig) -> list[dict]:
    """Each rule fitted on the smaller U's of each width (and across widths), asked for the largest U.

    Args:
        plan: the grids.
        runs: the sweep's runs, with their losses.
        best: `optima` of the sweep.
        base: the runs' base trainer config.

    Returns:
        One record per width and rule (`judge`).
    """
    held = {w: max(units) for w, units in plan.units.items()}
    fit_all = best[best.U < best.width.map(held)]
    source = best[(best.width == plan.proxy_width) & (best.U == min(plan.units[plan.proxy_width]))].iloc[0]
    proxy = run_config(base, {**source[KEYS].to_dict(), "wd": source.refined_wd, "seed": 0})
    power_law = next(r for r in RULES if r.power_law)
    records = []
    for width, unique in held.items():
        cell = best[(best.width == width) & (best.U == unique)].iloc[0]
        target = run_config(base, {**cell[KEYS].to_dict(), "wd": cell.best_wd, "seed": 0})
        fit = fit_all[fit_all.width == width]
        candidates = [(f"{r.name} (w{width})", *predict(r, fit, target, cell.tpp)) for r in RULES]
        if len(plan.units) > 1:  # only a power law in T/N says something about the other width's optima
            candidates.append((f"{power_law.name} (all widths)", *predict(power_law, fit_all, target, cell.tpp)))
        code = target_config(proxy, width, unique_tokens=unique).optim.weight_decay
        source_name = f"w{proxy.model.width} U={proxy.budget.unique_tokens:,}"
        candidates.append((f"code: `transfer --unique-tokens {unique}` from {source_name}", code, None))
        mean = runs[(runs.width == width) & (runs.U == unique)].groupby("wd").loss.mean()
        records += [judge(name, wd, beta, cell, mean) for name, wd, beta in candidates]
    return records


def report_rules(plan: Plan, runs: pd.DataFrame, best: pd.DataFrame, base: TrainConfig) -> list[dict]:
    """`rule_predictions` on the seed means, printed as a table."""
    records = rule_predictions(plan, runs, best, base)
    print_table(
        f"Held-out U: each rule fitted on the smaller U's, predicting the largest (E = {plan.epochs:g})",
        ["width", "U", "rule", "predicted wd", "sweep's best (refined)", "grid steps", "loss at nearest", "≤ 1 step"],
        [
            [
                f"w{r['width']}",
                f"{r['U']:,}",
                r["rule"] + ("" if r["beta"] is None else f", β = {r['beta']:.2f}"),
                f"{r['predicted_wd']:.3g}" if r["steps_apart"] is not None else "not identified",
                f"{r['best_wd']:g} ({r['refined_wd']:.3g})",
                "" if r["steps_apart"] is None else f"{r['steps_apart']:+.2f}",
                "" if r["regret"] is None else f"{r['regret']:+.4f}",
                "" if r["steps_apart"] is None else "yes" if abs(r["steps_apart"]) <= 1 else "**no**",
            ]
            for r in records
        ],
    )
    print(
        "\ngrid steps: from the grid's best to the prediction, in steps of the 3× grid (`grid_position`), + "
        "above; loss at nearest: the seed-mean loss at the grid wd nearest the prediction minus the best"
    )
    return records


def report_per_seed(plan: Plan, runs: pd.DataFrame, base: TrainConfig) -> dict[int, list[dict]]:
    """The held-out predictions again from each seed's runs alone: how much of a verdict one seed carries.

    A fresh-context audit found the seed-mean verdict of a fitted rule reversed on one seed alone.
    """
    with warnings.catch_warnings():  # one seed has no spread: the noise band is empty, not an error
        warnings.simplefilter("ignore", RuntimeWarning)
        by_seed = {
            seed: rule_predictions(plan, one, optima(one, base), base)
            for seed, one in ((s, runs[runs.seed == s]) for s in plan.seeds)
        }
    first = by_seed[plan.seeds[0]]
    steps = lambda r: "" if r["steps_apart"] is None else f"{r['steps_apart']:+.2f}"  # noqa: E731
    print_table(
        "Held-out U from each seed alone: grid steps from that seed's best to the rule's prediction",
        ["width", "U", "rule", *(f"seed {s}" for s in plan.seeds)],
        [
            [f"w{r['width']}", f"{r['U']:,}", r["rule"], *(steps(by_seed[s][i]) for s in plan.seeds)]
            for i, r in enumerate(first)
        ],
    )
    return by_seed


def report_epochs(plan: Plan, runs: pd.DataFrame) -> dict:
    """Loss vs E at the E check's U's; where the best E and the best E·U sit at each."""
    mean = runs.groupby(["epochs", "U"]).loss.mean()
    print_table(
        f"E check, w{plan.proxy_width}: target_val_loss vs E (rows) and U (columns), mean of {len(plan.seeds)} "
        f"seeds, each U at its best wd at E = {plan.epochs:g}",
        ["E", *(f"U {u:,} (wd {runs[runs.U == u].wd.iloc[0]:g})" for u in plan.epoch_units)],
        [[f"{e:g}", *(f"{mean[(e, u)]:.4f}" for u in plan.epoch_units)] for e in plan.epoch_grid],
    )
    best_e = {u: float(mean.xs(u, level="U").idxmin()) for u in plan.epoch_units}
    small, large = min(plan.epoch_units), max(plan.epoch_units)
    grid = list(plan.epoch_grid)
    steps = grid.index(best_e[large]) - grid.index(best_e[small])
    ratio = best_e[large] * large / (best_e[small] * small)
    edges = [u for u, e in best_e.items() if e in (grid[0], grid[-1])]
    print(
        f"\nbest E: {', '.join(f'{e:g} at U={u:,}' for u, e in best_e.items())}: from U={small:,} to U={large:,} "
        f"the best E moves {steps:+d} grid step(s) and the best E·U ×{ratio:.3g} "
        f"({'E carries' if steps == 0 else 'E·U carries' if math.isclose(ratio, 1) else 'neither carries exactly'})"
        + (f"; at the grid's edge for U={', '.join(f'{u:,}' for u in edges)}" if edges else "")
    )
    return {"best_epochs": best_e, "steps": steps, "epoch_tokens_ratio": ratio}


def estimate(plan: Plan, steps: int = 10) -> None:
    """CPU time of the full benchmark from `steps` timed training steps of each width (one thread)."""
    config = plan.config()
    base = config.base_train_config()
    # the E check's wd is the sweep's best, unknown yet: any grid wd costs the same, and its runs at the
    # sweep's E are the sweep's own
    todo = pd.concat([points(plan), points(plan, dict.fromkeys(plan.epoch_units, plan.wds[0]))]).drop_duplicates()
    torch.set_num_threads(1)
    per_step = {w: step_seconds(with_values(base, {"model.width": w}), steps) for w in plan.units}
    tokens_per_step = base.optim.batch_size * base.data.seq_len
    rows, total = [], 0.0
    for (width, unique, epochs), cell in todo.groupby(KEYS):
        run_steps = math.ceil(train_tokens(unique, epochs, base.budget.mix_ratio) / tokens_per_step)
        seconds = per_step[width] * run_steps
        total += len(cell) * seconds
        rows.append(
            [
                f"w{width}",
                f"{unique:,}",
                f"{epochs:g}",
                len(cell),
                run_steps,
                f"{seconds:.0f} s",
                f"{len(cell) * seconds / 3600:.2f} h",
            ]
        )
    print_table(
        f"Estimate: {', '.join(f'w{w} {s * 1000:.1f} ms' for w, s in per_step.items())} a step, one thread",
        ["width", "U", "E", "runs", "steps a run", "per run", "CPU"],
        rows,
    )
    workers = config.search.concurrency
    print(
        f"\n{len(todo)} runs, total {total / 3600:.1f} CPU-hours; {total / 3600 / workers:.1f} h wall with {workers} "
        "runs at a time; timed steps only: the trainer's data pipeline, clipping and final evaluation come on "
        "top (about 1.4× in a w64 run, 2026-12)"
    )


def run(plan: Plan) -> None:
    """Train (resuming) the sweep and the E check, print every table, write budget_transfer.json."""
    base = plan.config().base_train_config()
    runs = train(plan, points(plan))
    best = optima(runs, base)
    report_sweep(plan, runs, best)
    predictions = report_rules(plan, runs, best, base)
    per_seed = report_per_seed(plan, runs, base)
    at_proxy = best[(best.width == plan.proxy_width) & best.U.isin(plan.epoch_units)]
    epoch_runs = train(plan, points(plan, dict(zip(at_proxy.U, at_proxy.best_wd, strict=True))))
    epochs = report_epochs(plan, epoch_runs)
    path = Path(plan.config().work_dir) / "budget_transfer.json"
    record = {
        "runs": pd.concat([runs, epoch_runs]).drop_duplicates().to_dict("records"),
        "optima": best.to_dict("records"),
        "predictions": predictions,
        "predictions_per_seed": per_seed,
        "epochs": epochs,
    }
    write_json(path, record)
    print(f"\nwritten: {path}")


def main() -> None:
    sweep_main(__doc__, TINY, FULL, estimate, run)


if __name__ == "__main__":
    main()
