"""Do the proxy's settings and ranking hold at a 32× larger target? (RESULTS.md "Proxy to target").
From the repository root, after the T = 0.8M searches and the target compare (run.sh does both):

    .venv/bin/python examples/levers/proxy_target.py [--level 800000] [--width 256] [--depth 4]
        [--workers 2] [--plan]

It reads the levers' bests at the proxy (`runs/levers/T{level}/compare.json`) and at the target
(`compare_w{width}d{depth}.json`, from `automix compare ... --width --depth --seeds 101,102,103`),
then trains a local sweep around the transferred joint best (wd ×⅓ ×3, lr ×½ ×2, r ±0.15, one at a
time) at both sizes. Reported: the transferred point's gap to the sweep's best at the target, and Spearman's ρ
between proxy and target over every distinct configuration, with a bootstrap interval over the seeds.
Runs are cached by config (`runs/levers/T{level}/proxy_target/`): an interrupted run continues.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from automix.analysis._compare import paired_interval
from automix.analysis._reruns import train_many, with_seed
from automix.config._study import load_config
from automix.scaling._transfer import target_config, with_values
from trainer.atomic import write_json
from trainer.config import TrainConfig

# One-at-a-time neighbours of the transferred joint point: (setting, factor or shift).
NEIGHBOURS = (("weight_decay", 1 / 3), ("weight_decay", 3.0), ("learning_rate", 0.5), ("learning_rate", 2.0))
R_SHIFTS = (-0.15, 0.15)
R_MAX = 0.75  # the joint space's upper bound (search_spaces/equal_tokens_joint.yaml)


def _searches(compare: dict) -> list[dict]:
    """Every search's best once: searches that ended on the same settings are one configuration."""
    out: dict[str, dict] = {}
    for lever in compare["levers"]:
        for s in lever["searches"]:
            key = json.dumps([lever["lever"], s["settings"]], sort_keys=True)
            out.setdefault(key, {**s, "lever": lever["lever"]})
    return list(out.values())


def _proxy_config(level_dir: Path, search: dict) -> TrainConfig:
    """The best trial's trainer config, read back from its study config and `compare`'s settings."""
    # searches.py names study levers_<level>_<lever>_s<k> and writes it to <level>/<lever>_s<k>.yaml
    config = load_config(level_dir / f"{search['study'].removeprefix(f'levers_{level_dir.name}_')}.yaml")
    base = config.base_train_config()
    s = search["settings"]
    values = {"optim.weight_decay": s["weight_decay"], "optim.learning_rate": s["learning_rate"]}
    return with_values(base, {**values, "budget.mix_ratio": s["mix_ratio"]})


def neighbours(center: TrainConfig) -> dict[str, TrainConfig]:
    """The local sweep's points around `center` (at the proxy; the target's follow by transfer)."""
    out = {}
    for key, factor in NEIGHBOURS:
        value = getattr(center.optim, key) * factor
        out[f"{key} ×{factor:.3g}"] = with_values(center, {f"optim.{key}": value})
    for shift in R_SHIFTS:
        r = round(min(R_MAX, max(0.0, center.budget.mix_ratio + shift)), 2)
        if r != center.budget.mix_ratio:
            out[f"mix_ratio {shift:+.2f}"] = with_values(center, {"budget.mix_ratio": r})
    return out


def rank_correlation(proxy: np.ndarray, target: np.ndarray, draws: int = 2000, seed: int = 0) -> dict:
    """Spearman's ρ of the configurations' mean losses, and a 95% bootstrap interval over each side's seeds.

    Args:
        proxy, target: configurations × seeds losses at each size (seeds resampled per side).
    """
    rho = stats.spearmanr(proxy.mean(axis=1), target.mean(axis=1)).statistic
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(draws):
        p = proxy[:, rng.integers(0, proxy.shape[1], proxy.shape[1])].mean(axis=1)
        t = target[:, rng.integers(0, target.shape[1], target.shape[1])].mean(axis=1)
        boot.append(stats.spearmanr(p, t).statistic)
    low, high = np.quantile(boot, [0.025, 0.975])
    return {"rho": float(rho), "low": float(low), "high": float(high), "n": len(proxy)}


def _losses(runs: list[dict], n: int) -> list[list[float]]:
    """Final target losses of runs trained configuration by configuration, `n` seeds each."""
    return [[r["target_val_loss"] for r in runs[i : i + n]] for i in range(0, len(runs), n)]


def measure(args: argparse.Namespace) -> dict:
    """Train what is missing (cached) and put the proxy's and the target's losses side by side."""
    level_dir = Path(f"runs/levers/T{args.level}")
    proxy_cmp = json.loads((level_dir / "compare.json").read_text())
    searches = _searches(proxy_cmp)
    joint = min((s for s in searches if "joint" in s["lever"]), key=lambda s: np.mean(s["reruns"]["target_val_loss"]))
    sweep = neighbours(_proxy_config(level_dir, joint))
    if args.plan:
        for name, c in sweep.items():
            print(f"{name}: wd {c.optim.weight_decay:.3g} lr {c.optim.learning_rate:.3g} r {c.budget.mix_ratio}")
        raise SystemExit(0)
    target_cmp = json.loads((level_dir / f"compare_w{args.width}d{args.depth}.json").read_text())
    at_target = {s["study"]: s["reruns"]["target_val_loss"] for s in _searches(target_cmp)}
    proxy_seeds, target_seeds = proxy_cmp["seeds"], target_cmp["seeds"]
    cache = level_dir / "proxy_target"
    proxy_runs = [with_seed(c, s) for c in sweep.values() for s in proxy_seeds]
    target_runs = [
        with_seed(target_config(c, args.width, depth=args.depth), s) for c in sweep.values() for s in target_seeds
    ]
    rows = [
        {
            "name": f"{s['lever']} {s['study'].rsplit('_', 1)[1]}",
            "study": s["study"],
            "proxy": s["reruns"]["target_val_loss"],
            "target": at_target[s["study"]],
        }
        for s in searches
    ]
    proxy_losses = _losses(train_many(proxy_runs, cache, args.workers), len(proxy_seeds))
    target_losses = _losses(train_many(target_runs, cache, args.workers), len(target_seeds))
    for name, p, t in zip(sweep, proxy_losses, target_losses, strict=True):
        rows.append({"name": f"joint best, {name}", "proxy": p, "target": t})
    center = next(r for r in rows if r.get("study") == joint["study"])
    best = min([center, *rows[len(searches) :]], key=lambda r: np.mean(r["target"]))
    gap = paired_interval(np.array(center["target"]) - np.array(best["target"]))
    return {
        "level": args.level,
        "target": {"width": args.width, "depth": args.depth},
        "rows": rows,
        "transferred_joint": center["name"],
        "sweep_best": best["name"],
        "gap": {"mean": float(np.mean(center["target"]) - np.mean(best["target"])), **gap},
        "spearman": rank_correlation(np.array([r["proxy"] for r in rows]), np.array([r["target"] for r in rows])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=int, default=800_000)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plan", action="store_true", help="print the local sweep; train nothing")
    args = parser.parse_args()
    result = measure(args)
    for r in result["rows"]:
        t = np.array(r["target"])
        print(f"{r['name']:<36} proxy {np.mean(r['proxy']):.4f}  target {t.mean():.4f} ± {t.std(ddof=1):.4f}")
    print(f"transferred joint ({result['transferred_joint']}): {result['gap']['mean']:+.4f} nats from the sweep's best")
    sp = result["spearman"]
    print(f"Spearman ρ = {sp['rho']:.3f} [{sp['low']:.3f}, {sp['high']:.3f}] over {sp['n']} configurations")
    out = Path(f"runs/levers/T{args.level}/proxy_target_w{args.width}d{args.depth}.json")
    print(f"written: {write_json(out, result)}")


if __name__ == "__main__":
    main()
