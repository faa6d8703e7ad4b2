"""`automix search | train | report | compare | multiplier | ui | μP commands`: a thin layer over the Python API.

μP commands: `transfer`, `coord-check`, `verify-transfer`, `export`.

Bad input (config, space, corpora, budget) ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from automix.config._study import ConfigError, load_config
from trainer.data import CorpusError

EXIT_USAGE = 2


def _workspace(args: argparse.Namespace):
    """The study config of a command (file + `key=value` overrides) and its workspace (`--storage` wins)."""
    from automix.study._workspace import Workspace

    config = _with_storage(load_config(args.config, args.overrides), args.storage)
    return config, Workspace.from_config(config)


def _with_storage(config, storage: str | None):
    return config.model_copy(update={"storage": storage}) if storage else config


def _search(args: argparse.Namespace) -> int:
    from automix.engine._progress import print_summary
    from automix.engine._search import search

    config, ws = _workspace(args)
    result = search(config, resume=args.resume, join=args.join, address=args.address, storage=args.storage)
    best = json.loads(ws.path("best.json").read_text())
    print_summary(result.trials, best, config.search.metric)
    print(f"study {result.study_name}: {result.storage_url}")
    print(f"best params: {ws.path('best.json')}")
    uri = ws.tracking_uri
    print(f"MLflow: {uri}" if ws.tracking_server else f"MLflow: automix ui {args.config}  (tracking store {uri})")
    return 0 if best["best_trial"] is not None else 1


def _train(args: argparse.Namespace) -> int:
    from trainer.data import prepare
    from trainer.train import run

    if args.from_run:
        return _train_from_run(args)
    if not args.config:
        raise ConfigError("train: give a study CONFIG, or --from-run RUN_ID to re-create a trial")
    config, ws = _workspace(args)
    ws.check_owner()  # WORK/train is the study's own
    train_cfg = config.base_train_config()
    prepare(train_cfg)

    def show(metrics: dict) -> None:
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))

    result = run(train_cfg.model_copy(update={"out_dir": str(ws.path("train"))}), report=show)
    print(json.dumps({"metrics": result.metrics, "checkpoint": result.checkpoint_path}, indent=2))
    return 0


def _train_from_run(args: argparse.Namespace) -> int:
    """`train --from-run RUN_ID`: re-create a trial from its MLflow run and check its losses against the run's."""
    from automix.tracking._trial import metric_history, read_trial_run
    from automix.trial._recreate import check_data, compare, trial_config
    from trainer.train import run

    uri = _tracking_store(args)[0]
    recorded = read_trial_run(uri, args.from_run)
    config = trial_config(recorded.config, args.out)
    check_data(config, recorded.datasets)
    logged = {m: metric_history(uri, recorded.run_id, m) for m in ("target_val_loss", "aux_val_loss", "train_loss")}
    out = Path(config.out_dir) if config.out_dir else None
    if out is not None and (out / "result.json").is_file():
        print(f"{out} holds a finished run already: its result is read back, not trained again (or pass --out)")
    print(f"re-creating {recorded.name} (run {recorded.run_id}, {recorded.state}) into {out}", flush=True)
    result = run(config)
    check = compare(result.history, {m: v for m, v in logged.items() if v})
    final = result.metrics.get("target_val_loss")
    print(f"target_val_loss={final!r} at {result.metrics.get('tokens')} tokens; checkpoint {result.checkpoint_path}")
    if check.identical:
        print(f"identical to the run: all {check.compared} logged values (losses at each evaluation), bit for bit")
        return 0
    for metric, step, was, now in check.differences[:5]:
        print(f"differs: {metric} at {step} tokens: run {was!r}, now {now!r}")
    print(f"{len(check.differences)} of {check.compared} logged values differ (bit-exact only on CPU)")
    return 1


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _tracking_store(args: argparse.Namespace) -> tuple[str, str | None]:
    """The MLflow store a command names (`--tracking-uri`, a CONFIG's, or `--work-dir`'s) and its experiment."""
    if args.tracking_uri:
        return args.tracking_uri, None
    if args.config:
        ws = _workspace(args)[1]
        return ws.tracking_uri, ws.experiment
    return f"sqlite:///{Path(args.work_dir).resolve() / 'mlflow.db'}", None


def _ui(args: argparse.Namespace) -> int:
    from automix.tracking._store import check_tracking_uri
    from automix.tracking._ui import experiment_page, serve

    uri, experiment = _tracking_store(args)
    if _is_server(uri):  # a tracking server serves its own UI: nothing to start
        check_tracking_uri(uri)
        print(f"MLflow UI: open {experiment_page(uri, experiment, uri)} (served by the tracking server)")
        return 0
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ConfigError(f"no MLflow store at {uri}: run `automix search` first (or pass --work-dir)")
    server = f"http://127.0.0.1:{args.port}"
    print(f"MLflow UI starting on {server} for {uri} (Ctrl-C stops it)", flush=True)
    # One worker: the UI of one user's study; MLflow's default four take a minute to start on 2 cores.
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"]
    # The server's access log and warnings go to WORK/automix.log, as a search's do (--verbose: the console).
    log = None if args.verbose else Path(uri.removeprefix("sqlite:///")).parent / "automix.log"
    code = serve(cmd, server, lambda: experiment_page(uri, experiment, server), lambda m: print(m, flush=True), log)
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGINT) else code


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(float(x)) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integers (e.g. 1,2), got '{text}'") from None


def _print_rows(rows: list[dict]) -> None:
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))


def _report(args: argparse.Namespace) -> int:
    from automix.analysis._report import build_report

    config, _ = _workspace(args)
    html_path, md_path = build_report(config, log_to_mlflow=not args.no_mlflow)
    print(f"report: {html_path}\nmarkdown: {md_path}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from automix.analysis._compare import compare_levers, difference_table, summary_table
    from automix.study._workspace import Workspace
    from trainer.atomic import write_json

    paths = [c for c in args.configs if "=" not in c]  # `key=value` items apply to every config
    overrides = [c for c in args.configs if "=" in c]
    configs = [_with_storage(load_config(path, overrides), args.storage) for path in paths]
    result = compare_levers(configs, _int_list(args.seeds, "--seeds"), args.workers)
    _print_rows(summary_table(result))
    _print_rows(difference_table(result))
    out = args.out or Workspace.from_config(configs[0]).path("compare.json")
    print(f"written: {write_json(out, result)}")
    return 0


def _multiplier(args: argparse.Namespace) -> int:
    from automix.analysis._multiplier import measure
    from trainer.atomic import write_json

    config, ws = _workspace(args)
    reference = load_config(args.reference) if args.reference else config
    units, seeds = _int_list(args.units, "--units"), _int_list(args.seeds, "--seeds")
    result = measure(config, reference, units, seeds, args.workers)
    for e in result["estimates"]:
        interval = f"95% [{e['low']:.3g}, {e['high']:.3g}], {e['fit']['kind']} fit"
        print(f"{e['metric']}: multiplier {e['multiplier']:.3g} ({interval})")
    print(f"written: {write_json(ws.path('multiplier.json'), result)}")
    return 0


def _transfer(args: argparse.Namespace) -> int:
    from automix.scaling._transfer import study_config_from_tracking, transfer

    args.config = args.config or args.config_flag
    if bool(args.study) == bool(args.config):
        raise ConfigError("transfer: give either a study CONFIG or --study NAME")
    if args.config:
        config, _ = _workspace(args)
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

    config, ws = _workspace(args)
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

    config, _ = _workspace(args)
    result = verify_transfer(config, args.widths, args.lrs or LR_GRID, args.wds or WD_GRID, depths=args.depths)
    print(result.best.to_string(index=False))
    for key, steps in result.drift.items():
        print(f"{key}: best value drifts {steps} grid step(s) across {result.axis}s")
    print(f"plot: {result.plot}\nwritten: {result.path}")
    return 0 if result.transfers("lr") else 1


def _export(args: argparse.Namespace) -> int:
    from trainer.export import export

    source = args.source
    if source.endswith((".yaml", ".yml")):  # a study config: its best trial, from wherever the study is kept
        args.config = source
        source = str(_best_trial_dir(*_workspace(args)))
    try:
        print(f"Hugging Face model: {export(source, args.out)}")
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    return 0


def _best_trial_dir(config, workspace) -> Path:
    from automix.study._results import best_trials

    best = best_trials(workspace.load_study(), config.search)
    if not best:
        raise ConfigError(f"study '{config.study}' has no COMPLETE trial to export")
    return workspace.trials_dir / f"{best[0].number:04d}"


STORAGE_HELP = "Optuna storage URL or journal:PATH; overrides the config's storage (default: sqlite in work_dir)"


def _study_args(p: argparse.ArgumentParser, config_help: str = "study config YAML", optional: bool = False) -> None:
    """`CONFIG [key=value ...] [--storage URL]`: how every command names the study it opens."""
    p.add_argument("config", nargs="?" if optional else None, help=config_help)
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. search.n_trials=4 storage=journal:s.log")
    p.add_argument("--storage", help=STORAGE_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("search", help="search weight decay, lr, epochs and mix ratio on a μP proxy")
    _study_args(p, "study config YAML (e.g. examples/ar_en_cpu.yaml)")
    p.add_argument("--resume", action="store_true", help="continue the study where it stopped")
    p.add_argument("--address", help="join an existing Ray cluster (e.g. auto or ray://HOST:10001)")
    p.add_argument("--join", action="store_true", help="run alongside other drivers of the same study")
    p.add_argument("--verbose", action="store_true", help="also show Ray's and MLflow's output (see WORK/automix.log)")
    p.set_defaults(func=_search)

    p = sub.add_parser("train", help="one training run with the config's own values, or a trial re-created")
    _study_args(p, "study config YAML (with --from-run: where its MLflow store is)", optional=True)
    p.add_argument("--from-run", metavar="RUN_ID", help="re-create a trial from its MLflow run and check its losses")
    p.add_argument("--work-dir", default="runs", help="with --from-run, no CONFIG: work directory holding mlflow.db")
    p.add_argument("--tracking-uri", help="with --from-run: the MLflow store holding the run")
    p.add_argument("--out", help="with --from-run: where the checkpoint goes (default: the trial's own folder)")
    p.set_defaults(func=_train)

    p = sub.add_parser("report", help="HTML + Markdown report of a study, logged to its MLflow parent run")
    _study_args(p)
    p.add_argument("--no-mlflow", action="store_true", help="do not log the report as MLflow artifacts")
    p.set_defaults(func=_report)

    p = sub.add_parser("compare", help="mix vs tune: each study's best settings re-trained with fresh seeds")
    p.add_argument("configs", nargs="+", help="study configs at one data budget, then key=value overrides for all")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--seeds", default="1,2", help="seeds for the re-runs (the search used the config's seed)")
    p.add_argument("--workers", type=int, default=2, help="runs trained at once, one thread each")
    p.add_argument("--out", type=Path, help="result file (default: compare.json in the first study's work_dir)")
    p.set_defaults(func=_compare)

    p = sub.add_parser("multiplier", help="effective-data multiplier of the study's best mixed run")
    _study_args(p, "the mixed (joint) study config")
    p.add_argument("--reference", help="study whose best settings at r=0 make the target-only curve")
    p.add_argument("--units", default="12500,25000,50000,100000", help="U of the target-only runs")
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=_multiplier)

    p = sub.add_parser("transfer", help="train a study's best (or given) trial at wider (and deeper) models")
    _study_args(p, "study config YAML (or --study NAME)", optional=True)
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
    _study_args(p)
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--depths", type=int, nargs="+", help="check depth at the config's width instead, e.g. 2 4 8 16")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--lr", type=float, help="default: the config's learning_rate")
    p.set_defaults(func=_coord_check)

    p = sub.add_parser("verify-transfer", help="LR and WD sweeps × width (μP vs SP) or depth (CompleteP vs μP)")
    _study_args(p)
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

    p = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1 against the study's store")
    _study_args(p, "study config (its work_dir holds mlflow.db, or tracking.uri names a server)", optional=True)
    p.add_argument("--work-dir", default="runs", help="work directory holding mlflow.db (without CONFIG)")
    p.add_argument("--tracking-uri", help="a tracking store URI; for a server (http://...) its address is printed")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--verbose", action="store_true", help="show the server's access log (else in WORK/automix.log)")
    p.set_defaults(func=_ui)
    return parser


# Messages raised in Python name keyword arguments; on the command line they are flags.
_FLAGS = {"resume=True": "--resume", "join=True": "--join"}


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `search --verbose`: Ray's and MLflow's own output on the console too (it always goes to
    # WORK/automix.log); read here so that it works with or without a parser entry for it.
    verbose = argv[:1] == ["search"] and "--verbose" in argv
    argv = [a for a in argv if not (verbose and a == "--verbose")]
    # Overrides may follow flags (`search cfg.yaml --resume a.b=1`): argparse leaves those unparsed.
    args, extra = parser.parse_known_args(argv)
    stray = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(level=os.environ.get("AUTOMIX_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    before = os.environ.get("AUTOMIX_VERBOSE")
    if verbose or getattr(args, "verbose", False):
        os.environ["AUTOMIX_VERBOSE"] = "1"
    try:
        return args.func(args)
    except (ConfigError, CorpusError) as e:
        message = str(e)
        for python, flag in _FLAGS.items():
            message = message.replace(python, flag)
        print(f"automix: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM during a search: its cleanup has run
        print("automix: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        if before is None:
            os.environ.pop("AUTOMIX_VERBOSE", None)
        else:
            os.environ["AUTOMIX_VERBOSE"] = before


if __name__ == "__main__":
    sys.exit(main())
