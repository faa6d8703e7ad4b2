"""The fair-search table: every method on every surface, beside the oracle floor, with the goals checked.

    .venv/bin/python benchmarks/fair_search.py [benchmarks/results/*.json]

Reads the per-seed records that `search_efficiency.py --out` (automix's own searches, through Ray
Tune) and `peers.py --out` (stock Optuna through ask/tell, DEHB, SMAC3) write, and prints:
- per surface, each method's seeds reaching the target and median share of the grid's tokens
  (a median over all seeds, a seed that missed counting as infinitely dear: "-" when half missed);
- the goals of issue 23: the default within 0.5% in >= 9/10 seeds at <= 2x the oracle floor; random
  search with the default early stopping reaching the target as often as without it for <= 60% of
  its tokens; the default's tokens against the best stock Optuna configuration of each surface
  (TPE or GP, with or without HyperbandPruner), on the geometric mean over surfaces where both reach it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from _grids import GRIDS, load

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT = "automix default: tpe + asha (progress, 1 rung)"
RANDOM, RANDOM_ES = "random", "random + asha (progress, 1 rung)"
STOCK = ("tpe", "tpe+hyperband", "tpe-univariate", "tpe-univariate+hyperband", "gp", "gp+hyperband")


def surfaces(paths: list[Path]) -> dict[str, dict]:
    """{surface: {"total", "floor", "methods": {label: [tokens per seed]}}}, merged over the records."""
    out: dict[str, dict] = {}
    for path in paths:
        for name, grid in json.loads(path.read_text())["grids"].items():
            entry = out.setdefault(name, {"total": grid["total_tokens"], "floor": grid["oracle_floor_tokens"]})
            methods = entry.setdefault("methods", {})
            methods.update({label: record["tokens"] for label, record in grid["methods"].items()})
    return out


def median(tokens: list[float]) -> float:
    return statistics.median(tokens) if tokens else math.nan


def hits(tokens: list[float]) -> int:
    return sum(math.isfinite(t) for t in tokens)


def share(tokens: float, total: float) -> str:
    return f"{tokens / total:.1%}" if math.isfinite(tokens) else "-"


def print_table(data: dict[str, dict]) -> None:
    names = list(data)
    labels = list(dict.fromkeys(label for s in data.values() for label in s["methods"]))
    print("| method | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label in labels:
        cells = []
        for name in names:
            tokens = data[name]["methods"].get(label)
            cell = (
                "" if tokens is None else f"{hits(tokens)}/{len(tokens)}, {share(median(tokens), data[name]['total'])}"
            )
            cells.append(cell)
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("| rule: the dearest point at the defaults (one trial) | " + " | ".join(rule(n) for n in names) + " |")
    print("| oracle floor | " + " | ".join(share(data[n]["floor"], data[n]["total"]) for n in names) + " |")


def rule(name: str) -> str:
    """Whether the rule "train the dearest point at the example's defaults" reaches a committed
    grid's target, and its share of the grid's tokens (synthetic surfaces have no defaults: "")."""
    if not (GRIDS / f"{name}.json").is_file():
        return ""
    grid = load(name)
    point = grid.dearest_at_defaults()
    hit = grid.final(point) <= grid.target
    return f"{int(hit)}/1, {grid.cost(point) / grid.total:.1%}" if hit else "0/1, -"


def check_goals(data: dict[str, dict]) -> None:
    ratios = []
    for name, s in data.items():
        m, total = s["methods"], s["total"]
        if DEFAULT in m:
            d = m[DEFAULT]
            print(
                f"{name}: default {hits(d)}/{len(d)}, {share(median(d), total)} = "
                f"{median(d) / s['floor']:.1f}x the oracle floor"
            )
        if RANDOM in m and RANDOM_ES in m:
            r, es = m[RANDOM], m[RANDOM_ES]
            ratio = median(es) / median(r) if math.isfinite(median(r)) else math.nan
            print(f"{name}: random {hits(r)}/{len(r)}, random + default early stopping {hits(es)}/{len(es)}, "
                  f"median tokens {ratio:.2f}x")  # fmt: skip
        stock = {k: median(v) for k, v in m.items() if k in STOCK}
        if DEFAULT in m and stock:
            best = min(stock, key=stock.get)
            if math.isfinite(stock[best]) and math.isfinite(median(m[DEFAULT])):
                ratios.append(median(m[DEFAULT]) / stock[best])
                print(f"{name}: default / best stock Optuna ({best}) = {ratios[-1]:.2f}x")
            else:
                ours, theirs = share(median(m[DEFAULT]), total), share(stock[best], total)
                print(f"{name}: default {ours}, best stock ({best}) {theirs}: no ratio")
    if ratios:
        geo = math.exp(statistics.fmean(math.log(r) for r in ratios))
        print(f"geometric mean over {len(ratios)} surfaces: default / best stock Optuna = {geo:.2f}x")


def rank_methods(data: dict[str, dict]) -> None:
    """Each of automix's methods against the best stock Optuna configuration of every surface: the
    geometric mean of the ratio of median tokens, and the surfaces where it misses in half the seeds."""
    labels = [k for k in dict.fromkeys(k for s in data.values() for k in s["methods"]) if k not in STOCK]
    rows = []
    for label in labels:
        ratios, missed = [], []
        for name, s in data.items():
            stock = [median(v) for k, v in s["methods"].items() if k in STOCK]
            if label not in s["methods"] or not stock:
                continue
            ours, theirs = median(s["methods"][label]), min(stock)
            if not math.isfinite(ours):
                missed.append(name)
            elif math.isfinite(theirs):
                ratios.append(ours / theirs)
        if ratios:
            rows.append((math.exp(statistics.fmean(math.log(r) for r in ratios)), label, len(ratios), missed))
    print("| method | geometric mean vs best stock Optuna | surfaces | missed (half the seeds or more) |")
    print("|---|---|---|---|")
    for geo, label, n, missed in sorted(rows, key=lambda r: (len(r[3]), r[0])):
        print(f"| {label} | {geo:.2f}x | {n} | {', '.join(missed) or '-'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="*", type=Path, default=sorted(RESULTS.glob("*.json")))
    args = parser.parse_args()
    data = surfaces(args.records)
    print_table(data)
    print()
    check_goals(data)
    print()
    rank_methods(data)


if __name__ == "__main__":
    main()
