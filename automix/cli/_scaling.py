"""`automix transfer | coord-check | verify-transfer | export`: μP and CompleteP at larger models, and export."""

from __future__ import annotations

import argparse
from pathlib import Path

from automix.cli._common import STORAGE_HELP, study_args, workspace
from automix.errors import ConfigError


def add_commands(sub) -> None:
    """Register the commands of this group."""
    p = sub.add_parser("transfer", help="train a study's best (or given) trial at wider (and deeper) models")
    study_args(p, "study config YAML (or --study NAME)", optional=True)
    p.add_argument("--config", dest="config_flag", help="the study config, as a flag (same as CONFIG)")
    p.add_argument("--study", help="study name; its config is read from the search's MLflow run")
    p.add_argument("--work-dir", help="work directory of --study (default runs/STUDY)")
    p.add_argument("--widths", "--width", type=int, nargs="+", required=True, help="target widths, e.g. 256 512")
    p.add_argument("--depth", type=int, help="target depth (default: the proxy's); completep carries lr and wd")
    p.add_argument("--trial", type=int, help="trial number (default: the best COMPLETE trial)")
    budget = p.add_mutually_exclusive_group()  # E is kept, so one fixes the other
    budget.add_argument("--train-tokens", type=int, help="T at the target: E, r kept, U and wd rescaled")
    budget.add_argument("--unique-tokens", type=int, help="U at the target: E, r kept, T and wd rescaled")
    p.set_defaults(func=_transfer)

    p = sub.add_parser("coord-check", help="activation scale vs width (μP, SP) or depth (CompleteP, μP), first steps")
    study_args(p)
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--depths", type=int, nargs="+", help="check depth at the config's width instead, e.g. 2 4 8 16")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--lr", type=float, help="default: the config's learning_rate")
    p.set_defaults(func=_coord_check)

    p = sub.add_parser("verify-transfer", help="LR and WD sweeps × width (μP vs SP) or depth (CompleteP vs μP)")
    study_args(p)
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--depths", type=int, nargs="+", help="sweep depth at the config's width instead, e.g. 2 4 8 16")
    p.add_argument("--lrs", type=float, nargs="+", help="learning-rate grid (default 1e-3 × 2^0..6)")
    p.add_argument("--wds", type=float, nargs="+", help="weight-decay grid (default 0.03 … 3)")
    p.set_defaults(func=_verify_transfer)

    p = sub.add_parser("export", help="write a checkpoint as a Hugging Face model + tokenizer")
    p.add_argument("source", help="a study config (its best trial), model.pt, a run/trial directory, or a work dir")
    p.add_argument("overrides", nargs="*", help="key=value overrides of a study config SOURCE")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_export)


def _transfer(args: argparse.Namespace) -> int:
    from automix.scaling._transfer import study_config_from_tracking, transfer

    args.config = args.config or args.config_flag
    if bool(args.study) == bool(args.config):
        raise ConfigError("transfer: give either a study CONFIG or --study NAME")
    if args.config:
        config, _ = workspace(args)
    else:
        config = study_config_from_tracking(args.study, args.work_dir)
    result = transfer(
        config, args.widths, args.trial, args.train_tokens, depth=args.depth, unique_tokens=args.unique_tokens
    )
    for r in result.runs:
        shape = f"width {r['width']} depth {r['depth']}"
        print(f"{shape}: target_val_loss={r['metrics']['target_val_loss']:.4f}  {r['checkpoint']}")
    print(f"written: {result.path}")
    return 0


def _coord_check(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from automix.config._study import format_validation_error
    from trainer.coord_check import coord_check, plot_coord_check, slopes

    config, ws = workspace(args)
    axis, sizes = ("depth", args.depths) if args.depths else ("width", args.widths)
    try:
        df = coord_check(config.base_train_config(), sizes, steps=args.steps, lr=args.lr, axis=axis)
    except ValidationError as e:
        raise ConfigError(f"coord-check: {format_validation_error(e)}") from None
    out = ws.path("coord_check")
    out.mkdir(parents=True, exist_ok=True)
    stem = "coord_check" if axis == "width" else "coord_check_depth"
    df.to_csv(out / f"{stem}.csv", index=False)
    fitted = slopes(df)
    print(f"slope of log mean|x| vs log {axis} at the last step (0: flat, 1: grows like {axis}):")
    print(fitted[fitted.t == args.steps].pivot(index="module", columns="parametrization", values="slope").round(2))
    print(f"plot: {plot_coord_check(df, out / f'{stem}.png')}")
    return 0


def _verify_transfer(args: argparse.Namespace) -> int:
    from automix.scaling._verify import LR_GRID, WD_GRID, verify_transfer

    config, _ = workspace(args)
    result = verify_transfer(config, args.widths, args.lrs or LR_GRID, args.wds or WD_GRID, depths=args.depths)
    print(result.best.to_string(index=False))
    for key, steps in result.drift.items():
        print(f"{key}: best value drifts {steps} grid step(s) across {result.axis}s")
    print(f"plot: {result.plot}\nwritten: {result.path}")
    return 0 if result.transfers("lr") else 1


def _export(args: argparse.Namespace) -> int:
    from automix.study import Workspace
    from trainer.export import export

    source = Path(args.source)
    if source.suffix in (".yaml", ".yml"):  # a study config: its best trial, from wherever the study is kept
        args.config = args.source
        source = _best_trial_dir(*workspace(args))
    elif source.is_dir() and not (source / "model.pt").is_file():  # a study's work dir: the trial best.json names
        source = Workspace.at(source).best_trial_dir() or source
    try:
        print(f"Hugging Face model: {export(source, args.out)}")
    except FileNotFoundError:
        raise ConfigError(
            f"no checkpoint at {args.source}: give a study config, a model.pt, a run directory holding one, "
            "or a study work dir"
        ) from None
    return 0


def _best_trial_dir(config, workspace) -> Path:
    from automix.study._results import best_trials

    best = best_trials(workspace.load_study(), config.search)
    if not best:
        raise ConfigError(f"study '{config.study}' has no COMPLETE trial to export")
    return workspace.trial_dir(best[0].number)
