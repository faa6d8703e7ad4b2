"""`automix search | train | ui`: a thin layer over the Python API.

Bad input (config, space, corpora, budget) ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from automix.config import ConfigError, load_config
from automix.tracking import default_tracking_uri
from trainer.data import CorpusError

EXIT_USAGE = 2


def _search(args: argparse.Namespace) -> int:
    from automix.progress import print_summary
    from automix.search import search

    config = load_config(args.config, args.overrides)
    result = search(config, resume=args.resume, address=args.address)
    best = json.loads((result.work_dir / "best.json").read_text())
    print_summary(result.trials, best, config.search.metric)
    print(f"study {result.study_name}: {result.storage_url}")
    print(f"best params: {result.work_dir / 'best.json'}")
    uri = config.tracking.uri or default_tracking_uri(result.work_dir)
    print(f"MLflow: automix ui {args.config}  (tracking store {uri})")
    return 0 if best["best_trial"] is not None else 1


def _train(args: argparse.Namespace) -> int:
    from trainer.data import prepare
    from trainer.train import run

    config = load_config(args.config, args.overrides)
    train_cfg = config.base_train_config()
    prepare(train_cfg)

    def show(metrics: dict) -> None:
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))

    result = run(train_cfg.model_copy(update={"out_dir": str(config.work_path / "train")}), report=show)
    print(json.dumps({"metrics": result.metrics, "checkpoint": result.checkpoint_path}, indent=2))
    return 0


def _ui(args: argparse.Namespace) -> int:
    if args.config:
        config = load_config(args.config)
        uri = config.tracking.uri or default_tracking_uri(config.work_path)
    else:
        uri = default_tracking_uri(Path(args.work_dir).resolve())
    print(f"MLflow UI on http://127.0.0.1:{args.port} for {uri}")
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(args.port),
    ]
    return subprocess.call(cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("search", help="search weight decay, lr, epochs and mix ratio on a μP proxy")
    p.add_argument("config", help="study config YAML (e.g. examples/ar_en_cpu.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. search.n_trials=4")
    p.add_argument("--resume", action="store_true", help="continue the study in the same work directory")
    p.add_argument("--address", help="join an existing Ray cluster (e.g. auto or ray://HOST:10001)")
    p.set_defaults(func=_search)

    p = sub.add_parser("train", help="one training run with the config's own values (no search)")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=_train)

    p = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1 against the study's store")
    p.add_argument("config", nargs="?", help="study config (its work_dir holds mlflow.db)")
    p.add_argument("--work-dir", default="runs", help="work directory holding mlflow.db")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("AUTOMIX_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ConfigError, CorpusError) as e:
        print(f"automix: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
