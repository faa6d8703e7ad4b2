"""Does repeating the target data hurt in the levers' regime? 16 epochs over U against one epoch over
16·U (the same tokens), each at its own best learning rate, from several seeds (RESULTS.md "Choosing
the regime"). From the repository root:

    .venv/bin/python examples/levers/regime.py [--seeds 1,2,3] [--workers 2]

Runs are cached by config (`runs/levers/regime/`): an interrupted run continues where it stopped.
The repetition cost is paired by seed (a seed's initialisation and order are shared by both arms),
each arm at its own best lr of the sweep; the interval is a paired t interval over the seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from automix.analysis._compare import paired_interval
from automix.analysis._reruns import train_many
from automix.config._study import load_config
from trainer.atomic import write_json

CONFIG = "examples/levers/joint.yaml"
OUT = Path("runs/levers/regime")
LRS = (1.5e-3, 3e-3, 6e-3, 1.2e-2)
# (batch, U, lr sweep?): the levers' cell gets the lr sweep; the others are the regime's neighbours.
CELLS = ((4, 50_000, True), (4, 25_000, False), (16, 50_000, False))
EPOCHS = 16


def _config(base, batch: int, unique: int, epochs: int, lr: float, seed: int):
    return base.model_copy(
        update={
            "seed": seed,
            "optim": base.optim.model_copy(update={"batch_size": batch, "learning_rate": lr}),
            "budget": base.budget.model_copy(update={"unique_tokens": unique, "epochs": epochs, "mix_ratio": 0.0}),
            "eval_every_tokens": EPOCHS * 50_000,  # one evaluation, at the end
        }
    )


def plan(seeds: list[int]) -> list[dict]:
    """Every run: cell, arm (repeated or fresh), lr and seed, with its trainer config."""
    base = load_config(CONFIG).base_train_config()
    runs = []
    for batch, unique, sweep in CELLS:
        for lr in LRS if sweep else (3e-3,):
            for arm, u, e in (("repeated", unique, EPOCHS), ("fresh", EPOCHS * unique, 1)):
                for seed in seeds:
                    key = {"batch": batch, "U": unique, "arm": arm, "lr": lr, "seed": seed}
                    runs.append({**key, "config": _config(base, batch, u, e, lr, seed)})
    return runs


def cost_with_interval(rep: np.ndarray, fresh: np.ndarray) -> dict:
    """Repetition cost, each arm at its best lr (lrs × seeds arrays), and its paired t interval over seeds.

    The interval holds the lrs where they were chosen; with three seeds a bootstrap that re-chooses
    them would see only ten resamples, so it is not used.
    """
    i, j = int(rep.mean(axis=1).argmin()), int(fresh.mean(axis=1).argmin())
    d = rep[i] - fresh[j]
    interval = paired_interval(d)
    return {"cost": float(d.mean()), "low": interval["low"], "high": interval["high"], "per_seed": d.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = plan(seeds)
    metrics = train_many([r.pop("config") for r in runs], OUT / "runs", args.workers)
    for run, m in zip(runs, metrics, strict=True):
        run["loss"] = m["target_val_loss"]
    cells = []
    for batch, unique, _ in CELLS:
        mine = [r for r in runs if r["batch"] == batch and r["U"] == unique]
        lrs = sorted({r["lr"] for r in mine})

        def table(arm: str, mine=mine, lrs=lrs) -> np.ndarray:
            return np.array([[r["loss"] for r in mine if r["arm"] == arm and r["lr"] == lr] for lr in lrs])

        rep, fresh = table("repeated"), table("fresh")
        cell = {"batch": batch, "U": unique, "lrs": lrs, "repeated": rep.tolist(), "fresh": fresh.tolist()}
        cell |= cost_with_interval(rep, fresh)
        cell["best_lr"] = {
            "repeated": lrs[int(rep.mean(axis=1).argmin())],
            "fresh": lrs[int(fresh.mean(axis=1).argmin())],
        }
        cells.append(cell)
        best = cell["best_lr"]
        print(
            f"batch {batch:>2} U {unique // 1000}k: repeated {rep.mean(axis=1).min():.3f} (lr {best['repeated']:g}), "
            f"fresh {fresh.mean(axis=1).min():.3f} (lr {best['fresh']:g}), "
            f"repetition costs {cell['cost']:.3f} [{cell['low']:.3f}, {cell['high']:.3f}] over seeds {seeds}"
        )
        for lr, r, f in zip(lrs, rep, fresh, strict=True):
            sd = (r.std(ddof=1), f.std(ddof=1))
            print(f"    lr {lr:g}: repeated {r.mean():.3f} ± {sd[0]:.3f}, fresh {f.mean():.3f} ± {sd[1]:.3f}")
    print(
        f"written: {write_json(OUT / 'regime.json', {'seeds': seeds, 'epochs': EPOCHS, 'cells': cells, 'runs': runs})}"
    )


if __name__ == "__main__":
    main()
