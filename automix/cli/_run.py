"""`automix search` and `automix train`: the commands that train."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from automix.cli._common import study_args, tracking_store, workspace
from automix.errors import ConfigError


def add_commands(sub) -> None:
    """Register the commands of this group."""
    p = sub.add_parser("search", help="search weight decay, lr, epochs and mix ratio on a μP proxy")
    study_args(p, "study config YAML (e.g. examples/ar_en_cpu.yaml)")
    p.add_argument("--resume", action="store_true", help="continue the study where it stopped")
    p.add_argument(
        "--address", help="join an existing Ray cluster (e.g. auto or ray://HOST:10001); default: start one here"
    )
    p.add_argument("--join", action="store_true", help="run alongside other drivers of the same study")
    p.add_argument("--verbose", action="store_true", help="also show Ray's and MLflow's output (see WORK/automix.log)")
    p.set_defaults(func=_search)

    p = sub.add_parser("train", help="one training run with the config's own values, or a trial re-created")
    study_args(p, "study config YAML (with --from-run: where its MLflow store is)", optional=True)
    p.add_argument("--from-run", metavar="RUN_ID", help="re-create a trial from its MLflow run and check its losses")
    p.add_argument("--work-dir", default="runs", help="with --from-run, no CONFIG: work directory holding mlflow.db")
    p.add_argument("--tracking-uri", help="with --from-run: the MLflow store holding the run")
    p.add_argument("--out", help="with --from-run: where the checkpoint goes (default: the trial's own folder)")
    p.set_defaults(func=_train)


def _search(args: argparse.Namespace) -> int:
    from automix.console import print_summary
    from automix.driver._search import search

    config, ws = workspace(args)
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
    config, ws = workspace(args)
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

    uri = tracking_store(args)[0]
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
