"""Transfer across depth (issue 25): LR × depth under μP and CompleteP, and a joint width × depth transfer.

    flock /tmp/automix-cpu.lock .venv/bin/python benchmarks/depth_transfer.py [--tiny] [--estimate]

1. LR × depth {2, 4, 8, 16} at width 64 and at width 128 (base shape w64 d2), CompleteP against μP:
   `automix verify-transfer --depths` at each width. Goal: CompleteP's best lr within one 2× grid
   step across the depths; μP's drift shown beside it.
2. Joint transfer w64 d2 → w256 d8 under CompleteP: the full lr × wd grid at the proxy and at the
   target. Goal: the proxy's best (lr, wd) within one grid step of the target's own best, and the
   target's loss there within 0.01 nats of that best.
3. A seed check: the sweep's runs at depths 2 and 16, lr up to 1.6e-2, again from seed 1 (a
   fresh-context audit found the margins deciding the best lr below one seed's noise).

Each run as in benchmarks/transfer.py: shared corpora, byte-level, Arabic target, U = 32,768 tokens ×
E = 10 (T = 327,680 tokens, 160 steps of 16 × 128), warmup 32k tokens, one evaluation at the end,
seed 0, 2 runs at a time with one thread each. Resumable: each finished run is cached under its
config's fingerprint in runs/depth_bench/verify_transfer/runs/, so a second call (after a crash, or
with a longer grid) trains only what is missing, and the tables come back from the cache.
`--tiny` runs a few steps at tiny sizes into runs/depth_bench_tiny (does the script work);
`--estimate` times a few steps of every shape and prints the CPU time the full benchmark needs.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass

import torch
from _common import print_table, study_config
from _sweeps import SHORT_RUN, step_seconds, sweep_main

from automix.config._study import StudyConfig
from automix.scaling._transfer import with_values
from automix.scaling._verify import LR_GRID, WD_GRID, final_losses, verify_transfer
from automix.study import Workspace
from trainer.config import TrainConfig
from trainer.data import prepare
from trainer.model import LABELS

LOSS_GAP = 0.01  # nats: the joint transfer's goal at the transferred point
CHECK_SEED = 1  # a second seed at the cells that decide the drift (a fresh-context audit asked for it)
CHECK_MAX_LR = 1.6e-2  # the optimum's side of the grid: the check's runs are the sweep's below this
PS = ("completep", "mup")  # the parametrisation that should transfer in depth, then μP beside it


@dataclass(frozen=True)
class Plan:
    """The grids and shapes one benchmark run covers; the proxy shape is the base shape."""

    name: str
    depths: tuple[int, ...]
    depth_widths: tuple[int, ...]  # the widths the LR × depth sweep runs at
    lrs: tuple[float, ...]
    wds: tuple[float, ...]
    proxy: tuple[int, int]  # (width, depth)
    target: tuple[int, int]
    overrides: tuple[str, ...]

    def config(self, width: int | None = None) -> StudyConfig:
        """The study config (resumable: its work dir is kept), at `width` if given."""
        base = [f"model.base_width={self.proxy[0]}", f"model.base_depth={self.proxy[1]}", *self.overrides]
        return study_config(self.name, [*base, *([f"model.width={width}"] if width else [])], fresh=False)


RUN = SHORT_RUN
FULL = Plan("depth_bench", (2, 4, 8, 16), (64, 128), LR_GRID, WD_GRID, (64, 2), (256, 8), RUN)
TINY = Plan(
    "depth_bench_tiny",
    (1, 2),
    (16, 32),
    (4e-3, 8e-3),
    (0.1, 0.3),
    (16, 1),
    (32, 2),
    (*RUN, "budget.unique_tokens=1024", "budget.epochs=2", "optim.batch_size=4", "data.valid_tokens=1024"),
)


def depth_sweeps(plan: Plan) -> None:
    """LR × depth at each width of the plan, CompleteP and μP: best lr per depth, drift, all losses."""
    for width in plan.depth_widths:
        result = verify_transfer(plan.config(width), lrs=plan.lrs, wds=(), verbose=False, depths=plan.depths)
        best = result.best.pivot(index="depth", columns="parametrization", values=["value", "loss"])
        rows = [
            [depth, *(f"{best.loc[depth, ('value', p)]:.3g} ({best.loc[depth, ('loss', p)]:.4f})" for p in PS)]
            for depth in plan.depths
        ]
        drift = [f"**{result.drift[f'lr/{p}']} step(s)**" for p in PS]
        print_table(
            f"Width {width}: best lr per depth (its final target_val_loss)",
            ["depth", *(LABELS[p] for p in PS)],
            [*rows, ["drift", *drift]],
        )
        for p in PS:
            table = result.losses[result.losses.parametrization == p].pivot(
                index="value", columns="depth", values="loss"
            )
            print_table(
                f"Width {width}, {LABELS[p]}: loss vs lr (rows) and depth (columns)",
                ["lr", *(f"d{d}" for d in table.columns)],
                [[f"{lr:.3g}", *(f"{v:.4f}" for v in row)] for lr, row in table.iterrows()],
            )
        print(f"\nplot: {result.plot}")


def joint_transfer(plan: Plan) -> None:
    """The lr × wd grid under CompleteP at the proxy and at the target shape; where the optima sit."""
    config = plan.config()
    base = with_values(config.base_train_config(), {"threads": 1, "model.parametrization": "completep"})
    prepare(base)
    grid = list(itertools.product(plan.lrs, plan.wds))
    losses = {}
    for width, depth in (plan.proxy, plan.target):
        configs = [_at(base, width, depth, lr, wd) for lr, wd in grid]
        cache = Workspace.from_config(config).path("verify_transfer") / "runs"
        losses[width, depth] = dict(zip(grid, final_losses(configs, cache, config.search.concurrency), strict=True))
    for shape, table in losses.items():
        print_table(
            f"CompleteP w{shape[0]} d{shape[1]}: loss vs lr (rows) and wd (columns)",
            ["lr", *(f"wd {wd:g}" for wd in plan.wds)],
            [[f"{lr:.3g}", *(f"{table[lr, wd]:.4f}" for wd in plan.wds)] for lr in plan.lrs],
        )
    proxy_best = min(losses[plan.proxy], key=losses[plan.proxy].get)
    target = losses[plan.target]
    target_best = min(target, key=target.get)
    lr_steps = abs(plan.lrs.index(proxy_best[0]) - plan.lrs.index(target_best[0]))
    wd_steps = abs(plan.wds.index(proxy_best[1]) - plan.wds.index(target_best[1]))
    gap = target[proxy_best] - target[target_best]
    met = lr_steps <= 1 and wd_steps <= 1 and gap <= LOSS_GAP
    print_table(
        f"Joint transfer w{plan.proxy[0]} d{plan.proxy[1]} → w{plan.target[0]} d{plan.target[1]} (CompleteP)",
        ["", "lr", "wd", "target loss"],
        [
            ["proxy's best (transferred)", f"{proxy_best[0]:.3g}", f"{proxy_best[1]:.3g}", f"{target[proxy_best]:.4f}"],
            ["target's own best", f"{target_best[0]:.3g}", f"{target_best[1]:.3g}", f"{target[target_best]:.4f}"],
            ["apart", f"{lr_steps} step(s)", f"{wd_steps} step(s)", f"{gap:+.4f}"],
        ],
    )
    print(f"\ngoal (≤ 1 step each, ≤ {LOSS_GAP} nats): {'met' if met else 'not met'}")


def seed_check(plan: Plan) -> None:
    """The sweep's runs at the shallowest and deepest depth (lr ≤ CHECK_MAX_LR) again from CHECK_SEED.

    The runs are the cached seed-0 configs with only the seed changed, so the two seeds differ in
    nothing else; best lr per depth on each seed and on their mean, and the steps between depths.
    """
    cache = Workspace.from_config(plan.config()).path("verify_transfer") / "runs"
    ends, lrs = (min(plan.depths), max(plan.depths)), [lr for lr in plan.lrs if lr <= CHECK_MAX_LR * 1.001]
    first = {}
    for path in cache.glob("*.json"):
        run = json.loads(path.read_text())
        c = TrainConfig.model_validate(run["config"])
        key = (c.model.width, c.model.parametrization, c.model.depth, c.optim.learning_rate)
        if c.seed == 0 and c.optim.weight_decay == 0.1 and c.model.width in plan.depth_widths and key[2] in ends:
            first[key] = (c, run["target_val_loss"])
    keys = sorted(k for k in first if k[3] in lrs)
    again = final_losses([first[k][0].model_copy(update={"seed": CHECK_SEED}) for k in keys], cache, 2)
    losses = {k: (first[k][1], loss) for k, loss in zip(keys, again, strict=True)}
    rows = []
    for width, p in itertools.product(plan.depth_widths, PS):
        best = {}
        for depth, pick in itertools.product(ends, (0, 1, "mean")):
            at = {lr: losses[width, p, depth, lr] for lr in lrs}
            score = {lr: (sum(v) / 2 if pick == "mean" else v[pick]) for lr, v in at.items()}
            best[depth, pick] = min(score, key=score.get), min(score.values())
        cells = [f"{best[d, k][0]:.3g}" for d in ends for k in (0, 1)]
        mean = [f"{best[d, 'mean'][0]:.3g} ({best[d, 'mean'][1]:.4f})" for d in ends]
        steps = abs(lrs.index(best[ends[0], "mean"][0]) - lrs.index(best[ends[1], "mean"][0]))
        rows.append([f"w{width}", LABELS[p], *cells, *mean, f"{steps} step(s)"])
    d0, d1 = ends
    print_table(
        f"Seed check: best lr at depth {d0} and {d1} per seed (0, {CHECK_SEED}) and on their mean "
        f"(lr ≤ {CHECK_MAX_LR:g})",
        [
            "width",
            "rule",
            f"d{d0} s0",
            f"d{d0} s{CHECK_SEED}",
            f"d{d1} s0",
            f"d{d1} s{CHECK_SEED}",
            f"d{d0} mean",
            f"d{d1} mean",
            "apart (mean)",
        ],
        rows,
    )
    spread = [abs(a - b) for a, b in losses.values()]
    print(
        f"\nseed-to-seed |Δloss| over the {len(spread)} cells: "
        f"median {sorted(spread)[len(spread) // 2]:.4f}, max {max(spread):.4f}"
    )


def _at(base: TrainConfig, width: int, depth: int, lr: float, wd: float) -> TrainConfig:
    values = {"model.width": width, "model.depth": depth, "learning_rate": lr, "weight_decay": wd}
    return with_values(base, values)


def estimate(plan: Plan, steps: int = 4) -> None:
    """CPU time of the full benchmark from `steps` timed training steps of each shape (one thread)."""
    config = plan.config().base_train_config()
    batch, seq = config.optim.batch_size, config.data.seq_len
    run_steps = math.ceil(config.budget.total_tokens / (batch * seq))
    runs: dict[tuple[int, int], int] = {}
    for width, depth in itertools.product(plan.depth_widths, plan.depths):
        runs[width, depth] = runs.get((width, depth), 0) + len(plan.lrs) * len(PS)
    for shape in (plan.proxy, plan.target):
        # the proxy's wd = 0.1 column is the depth sweep's own CompleteP runs (cached)
        shared = len(plan.lrs) if shape in runs and 0.1 in plan.wds else 0
        runs[shape] = runs.get(shape, 0) + len(plan.lrs) * len(plan.wds) - shared
    torch.set_num_threads(1)
    rows, total = [], 0.0
    for (width, depth), n in sorted(runs.items()):
        shape = {"model.width": width, "model.depth": depth, "model.parametrization": "completep"}
        seconds = step_seconds(with_values(config, shape), steps) * run_steps
        total += n * seconds
        rows.append([f"w{width} d{depth}", n, f"{seconds:.0f} s", f"{n * seconds / 3600:.2f} h"])
    print_table(f"Estimate: {run_steps} steps a run, one thread", ["shape", "runs", "per run", "CPU"], rows)
    workers = plan.config().search.concurrency
    print(f"\ntotal {total / 3600:.1f} CPU-hours; {total / 3600 / workers:.1f} h wall with {workers} runs at a time")


def main() -> None:
    sweep_main(__doc__, TINY, FULL, estimate, lambda plan: (depth_sweeps(plan), joint_transfer(plan), seed_check(plan)))


if __name__ == "__main__":
    main()
