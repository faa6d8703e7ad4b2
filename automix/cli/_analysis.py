"""`automix report | compare | multiplier`: read-only analyses of finished studies (re-runs for the last two)."""

from __future__ import annotations

import argparse
from pathlib import Path

from automix.cli._common import STORAGE_HELP, int_list, print_rows, study_args, with_storage, workspace
from automix.errors import ConfigError


def add_commands(sub) -> None:
    """Register the commands of this group."""
    p = sub.add_parser("report", help="HTML + Markdown report of a study, logged to its MLflow parent run")
    study_args(p)
    p.add_argument("--no-mlflow", action="store_true", help="do not log the report as MLflow artifacts")
    p.set_defaults(func=_report)

    p = sub.add_parser("compare", help="mix vs tune: each study's best settings re-trained with fresh seeds")
    p.add_argument("configs", nargs="+", help="study configs at one data budget, then key=value overrides for all")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--seeds", default="1,2", help="seeds for the re-runs (the search used the config's seed)")
    p.add_argument("--workers", type=int, default=2, help="runs trained at once, one thread each")
    p.add_argument(
        "--out",
        type=Path,
        help="result file (default: compare.json, or compare_wWdL.json at another model, in the first study's dir)",
    )
    p.add_argument("--width", type=int, help="re-train at this width (μP transfer): does the verdict hold there?")
    p.add_argument("--depth", type=int, help="re-train at this depth (with --width or alone)")
    p.set_defaults(func=_compare)

    p = sub.add_parser("multiplier", help="effective-data multiplier of the mixed lever's best runs")
    study_args(p, "the mixed (joint) study config")
    p.add_argument("--searches", nargs="+", default=[], metavar="CONFIG", help="more searches of the mixed lever")
    p.add_argument("--reference", help="study whose best settings at r=0 make the target-only curve")
    p.add_argument("--units", default="12500,25000,50000,100000", help="U of the target-only runs")
    p.add_argument("--seeds", default="1,2")
    p.add_argument(
        "--holdout-seeds",
        default="",
        help="re-train each U's chosen reference point from these unseen seeds: the size of the selection's bias",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--retune",
        action="append",
        default=[],
        metavar="KEY=F1,F2,...",
        help="factors on the reference best, tried at each U: weight_decay, learning_rate, epochs (repeatable)",
    )
    p.set_defaults(func=_multiplier)


def _report(args: argparse.Namespace) -> int:
    from automix.analysis._report import build_report

    config, _ = workspace(args)
    html_path, md_path = build_report(config, log_to_mlflow=not args.no_mlflow)
    print(f"report: {html_path}\nmarkdown: {md_path}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from automix.analysis._compare import compare_levers, difference_table, summary_table
    from automix.config import load_config
    from automix.study._workspace import Workspace
    from trainer.atomic import write_json

    paths = [c for c in args.configs if "=" not in c]  # `key=value` items apply to every config
    overrides = [c for c in args.configs if "=" in c]
    configs = [with_storage(load_config(path, overrides), args.storage) for path in paths]
    at = _target(args)
    result = compare_levers(configs, int_list(args.seeds, "--seeds"), args.workers, at)
    print_rows(summary_table(result))
    print_rows(difference_table(result))
    shape = "" if at is None else f"_w{result['model']['width']}d{result['model']['depth']}"
    out = args.out or Workspace.from_config(configs[0]).path(f"compare{shape}.json")
    print(f"written: {write_json(out, result)}")
    return 0


def _target(args: argparse.Namespace):
    """The proxy → target map of `--width/--depth` (automix transfer's rules), or None."""
    if args.width is None and args.depth is None:
        return None
    from automix.scaling._transfer import target_config  # loads torch: only when asked for

    return lambda proxy: target_config(proxy, args.width or proxy.model.width, depth=args.depth)


def _multiplier(args: argparse.Namespace) -> int:
    from automix.analysis._multiplier import measure
    from automix.config import load_config
    from trainer.atomic import write_json

    # `key=value` items after --searches are overrides too; they apply to CONFIG and every search
    args.overrides += [s for s in args.searches if "=" in s]
    config, ws = workspace(args)
    searches = [with_storage(load_config(p, args.overrides), args.storage) for p in args.searches if "=" not in p]
    reference = load_config(args.reference) if args.reference else config
    units, seeds = int_list(args.units, "--units"), int_list(args.seeds, "--seeds")
    retune = _retune(args.retune)
    holdout = int_list(args.holdout_seeds, "--holdout-seeds")
    result = measure(
        [config, *searches], reference, units, seeds, args.workers, retune=retune or None, holdout_seeds=holdout
    )
    n_grid = len(result["points"]["reference"]["grid"])
    retuned = f"; reference re-tuned over {n_grid} grid points" if retune else ""
    for e in result["estimates"]:
        interval = f"95% [{e['low']:.3g}, {e['high']:.3g}], {e['fit']['kind']} fit{retuned}"
        print(f"{e['metric']}: multiplier {e['multiplier']:.3g} ({interval})")
    ref = result["points"]["reference"]
    for metric, runs in ref.get("holdout", {}).items():
        pairs = ", ".join(f"{c:.4g} → {sum(h) / len(h):.4g}" for c, h in zip(ref[metric], runs, strict=True))
        print(f"{metric}: chosen reference per U, choosing seeds → held-out seeds: {pairs}")
    print(f"written: {write_json(ws.path('multiplier.json'), result)}")
    return 0


def _retune(items: list[str]) -> dict[str, list[float]]:
    """`--retune weight_decay=0.33,1,3` items as {key: factors}; a ConfigError on a malformed one."""
    retune = {}
    for item in items:
        key, _, factors = item.partition("=")
        try:
            values = [float(x) for x in factors.split(",")]
        except ValueError:
            values = []
        if not key.strip() or not values:
            raise ConfigError(f"--retune takes KEY=F1,F2,... (e.g. weight_decay=0.33,1,3), got '{item}'")
        retune[key.strip()] = values
    return retune
