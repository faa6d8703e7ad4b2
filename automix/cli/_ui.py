"""`automix ui`: the MLflow UI against a study's store (or the address of a tracking server's own)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from automix.cli._common import is_server, study_args, tracking_store
from automix.errors import ConfigError


def add_commands(sub) -> None:
    """Register the commands of this group."""
    p = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1 against the study's store")
    study_args(p, "study config (its work_dir holds mlflow.db, or tracking.uri names a server)", optional=True)
    p.add_argument("--work-dir", default="runs", help="work directory holding mlflow.db (without CONFIG)")
    p.add_argument("--tracking-uri", help="a tracking store URI; for a server (http://...) its address is printed")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--verbose", action="store_true", help="show the server's access log (else in WORK/automix.log)")
    p.set_defaults(func=_ui)


def _ui(args: argparse.Namespace) -> int:
    from automix.tracking._store import check_tracking_uri
    from automix.tracking._ui import experiment_page, serve

    uri, experiment = tracking_store(args)
    if is_server(uri):  # a tracking server serves its own UI: nothing to start
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
