"""RESULTS.md's tables, printed as markdown from the result files the steps of run.sh write.
From the repository root:

    .venv/bin/python examples/levers/tables.py FILE ...

Each FILE is a `compare*.json` (`automix compare`), a `multiplier.json` (`automix multiplier`) or a
`proxy_target_*.json` (proxy_target.py); its kind is read from its keys. Tables are copied from
here into RESULTS.md rather than typed, so a figure there is the file's.

    .venv/bin/python examples/levers/tables.py --trend AGAINST COMPARE ...

prints, for compare files at different compute levels T, each lever's difference from the lever
AGAINST at every level and how much it changed from the first file's level to the last's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from automix.analysis import welch_contrast


def _row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list]) -> str:
    return "\n".join([_row(header), _row(["---"] * len(header)), *map(_row, rows)])


def _ms(values: list[float]) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def compare_tables(result: dict) -> str:
    """Per search: its best and re-runs; per lever pair: the difference with both intervals."""
    rows, n_seeds = [], len(result["seeds"])
    for lever in result["levers"]:
        for k, s in enumerate(lever["searches"], 1):
            p = s["settings"]
            best = f"{p['weight_decay']:.2g} / {p['learning_rate']:.2g} / {p['epochs']:.3g} / {p['mix_ratio']:.2f}"
            complete = f"{s['n_complete']}/{s['n_trials']}"
            rows.append(
                [
                    lever["lever"],
                    k,
                    complete,
                    best,
                    f"{s['selected']['target_val_loss']:.3f}",
                    _ms(s["reruns"]["target_val_loss"]),
                ]
            )
    header = ["lever", "search", "complete", "best (wd / lr / E / r)", "selected", f"re-runs ({n_seeds} seeds)"]
    means = [
        [lever["lever"], f"{lever['stats']['target_val_loss']['mean']:.3f}", lever["stats"]["target_val_loss"]["n"]]
        for lever in result["levers"]
    ]
    diffs = [
        [
            f"{d['first']} − {d['other']}",
            f"{d['mean']:+.3f}",
            _interval(d["seed"]),
            _interval(d["search"]),
            _interval(d["familywise"]) if "familywise" in d else "n/a",
        ]
        for d in result["differences"]
        if d["metric"] == "target_val_loss"
    ]
    return "\n\n".join(
        [
            _table(header, rows),
            _table(["lever", "mean target_val_loss", "runs"], means),
            _table(["difference", "mean", "seeds only", "searches and seeds", "the same, Bonferroni"], diffs),
        ]
    )


def _interval(i: dict) -> str:
    return "n/a" if i["low"] is None else f"[{i['low']:+.3f}, {i['high']:+.3f}]"


def multiplier_tables(result: dict) -> str:
    """Per U: the re-tuned reference's chosen point and mean; then each metric's multiplier."""
    ref, mixed = result["points"]["reference"], result["points"]["mixed"]
    rows = []
    for i, u in enumerate(ref["unique_tokens"]):
        j = ref["chosen"]["target_val_loss"][i]
        g = ref["grid"][j]
        rows.append(
            [
                f"{u:,}",
                f"{ref['epochs'][i][j]:.3g}",
                f"{g['weight_decay']:.2g}",
                f"{g['learning_rate']:.2g}",
                f"{ref['target_val_loss'][i]:.3f}",
                _ms(ref["holdout"]["target_val_loss"][i]) if "holdout" in ref else "n/a",
            ]
        )
    choosing, held = ref["runs"]["target_val_loss"][0][0], ref.get("holdout_seed", [])
    header = [
        "U",
        "E",
        "wd (chosen)",
        "lr (chosen)",
        f"choosing seeds ({len(choosing)})",
        f"held-out seeds ({len(held)})",
    ]
    per_search = [f"{np.mean(r):.3f}" for r in mixed["target_val_loss"]]
    mix = f"mixed searches at U = {mixed['unique_tokens']:,}: {', '.join(per_search)} (r {mixed['mix_ratio']})"
    est = [
        [
            e["metric"],
            f"{e['score']:.3f}",
            f"×{e['multiplier']:.2f}",
            f"[{e['low']:.2f}, {e['high']:.2f}]",
            e["fit"]["kind"],
            f"{e['n_failed']}/{e['n_boot']}",
        ]
        for e in result["estimates"]
    ]
    est_header = ["metric", "mixed score", "multiplier", "95% bootstrap", "fit", "draws not inverted"]
    return "\n\n".join([_table(header, rows), mix, _table(est_header, est)])


def proxy_target_tables(result: dict) -> str:
    """Every configuration at the proxy and the target, the gap and Spearman's ρ."""
    rows = [[r["name"], _ms(r["proxy"]), _ms(r["target"])] for r in result["rows"]]
    sp, gap = result["spearman"], result["gap"]
    return "\n\n".join(
        [
            _table(
                [
                    "configuration",
                    "proxy (w64 d2)",
                    f"target (w{result['target']['width']} d{result['target']['depth']})",
                ],
                rows,
            ),
            f"transferred joint ({result['transferred_joint']}) − sweep's best ({result['sweep_best']}): "
            f"{gap['mean']:+.4f} [{gap['low']:+.4f}, {gap['high']:+.4f}]",
            f"Spearman ρ = {sp['rho']:.2f} [{sp['low']:.2f}, {sp['high']:.2f}] over {sp['n']} configurations",
        ]
    )


def _search_means(result: dict) -> dict[str, np.ndarray]:
    """Each lever's searches' re-run means (target_val_loss), by lever name."""
    return {
        lever["lever"]: np.array([np.mean(s["reruns"]["target_val_loss"]) for s in lever["searches"]])
        for lever in result["levers"]
    }


def trend_table(against: str, results: list[dict]) -> str:
    """Each lever minus `against` at every level (search means), and the change from first to last level."""
    levels = [_search_means(r) for r in results]
    levels_t = (f"T = {r['train_tokens'] / 1e6:g}M" for r in results)
    header = ["difference", *levels_t, "last − first level (Welch df)", "the same, df = n − 1"]
    rows = []
    for name in (n for n in levels[0] if n != against):
        per = [m[name].mean() - m[against].mean() for m in levels]
        groups = [levels[-1][name], levels[-1][against], levels[0][name], levels[0][against]]
        parts = [(g.mean(), g.var(ddof=1) / len(g), len(g) - 1) for g in groups]
        welch = welch_contrast(parts, [1, -1, -1, 1])
        # the conservative choice: n − 1 of the smallest group
        _, low, high = welch_contrast(parts, [1, -1, -1, 1], df=min(len(g) for g in groups) - 1)
        interval = f"{welch[0]:+.3f} [{welch[1]:+.3f}, {welch[2]:+.3f}]"
        rows.append([f"{name} − {against}", *(f"{d:+.3f}" for d in per), interval, f"[{low:+.3f}, {high:+.3f}]"])
    return _table(header, rows)


def tables(result: dict) -> str:
    """The tables of one result file, by its kind."""
    if "levers" in result:
        return compare_tables(result)
    if "estimates" in result:
        return multiplier_tables(result)
    if "spearman" in result:
        return proxy_target_tables(result)
    raise SystemExit("tables.py: not a compare, multiplier or proxy_target result")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--trend", metavar="AGAINST", help="the compare files' lever differences across levels")
    args = parser.parse_args()
    if args.trend:
        results = [json.loads(path.read_text()) for path in args.files]
        print(f"<!-- {' '.join(map(str, args.files))} -->\n{trend_table(args.trend, results)}\n")
        return
    for path in args.files:
        print(f"<!-- {path} -->\n{tables(json.loads(path.read_text()))}\n")


if __name__ == "__main__":
    main()
