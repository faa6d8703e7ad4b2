"""MLflow tracking: one parent run per search, one child run per trial, logged from the driver.

Ray's own MLflow helpers read the experiment from the worker's environment and can leave runs
RUNNING; logging from a driver-side Tune callback through `MlflowClient` with explicit run ids
keeps a single writer on the store and closes every run. A tracking failure never kills a trial or
the search: records wait in a queue until the store answers again (see `MlflowTrialCallback`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from automix.config._study import ConfigError, default_cache_dir

log = logging.getLogger(__name__)
PARENT_TAG = "mlflow.parentRunId"
_PERMANENT_ERRORS = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST"}


def default_tracking_uri(work_dir: Path) -> str:
    """Embedded sqlite store in the work directory (MLflow 3 refuses a bare ./mlruns file store)."""
    return f"sqlite:///{work_dir / 'mlflow.db'}"


def seed_sqlite_store(uri: str) -> None:
    """Give a new sqlite tracking store MLflow's schema by copying an empty, migrated one.

    MLflow builds a new store by running each of its alembic migrations (~2 s, most of a small
    search's start-up); the result is the same for every store of one MLflow version, so it is
    built once per version in the cache and copied. Existing stores and other URIs are left alone.
    """
    path = Path(uri.removeprefix("sqlite:///"))
    if not uri.startswith("sqlite:///") or path.exists() or not path.parent.is_dir():
        return
    template = default_cache_dir() / "mlflow" / f"empty-store-{mlflow.__version__}.db"
    if not template.is_file():
        import sqlite3
        from contextlib import closing

        template.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=template.parent, suffix=".db")
        os.close(fd)
        try:
            # A client's first read of a database without tables (this empty file) makes MLflow
            # create its schema and run every migration.
            MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments()
            # MLflow also adds its Default experiment, with an artifact location under this
            # process's working directory: drop it, so that each copy gets its own when MLflow first
            # opens it, exactly as a store MLflow builds in place.
            with closing(sqlite3.connect(tmp)) as db, db:
                db.execute("DELETE FROM experiments WHERE experiment_id = 0")
            os.replace(tmp, template)  # atomic: a concurrent search sees no template or a whole one
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".db")
    os.close(fd)
    try:
        shutil.copyfile(template, tmp)
        os.link(tmp, path)  # atomic and never over a store another process made meanwhile
    except OSError:
        pass  # another process made it meanwhile, or no hard links here: MLflow builds its own
    finally:
        os.unlink(tmp)


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a tracking server that does not answer (MLflow's own client retries for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            response.read()
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise ConfigError(
            f"MLflow tracking server {uri} does not answer ({reason}): start it, or unset tracking.uri "
            "to track in the work directory"
        ) from None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 1}} → {'optim.lr': 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _finite_metrics(metrics: dict[str, Any], step: int, timestamp: int) -> list[Metric]:
    return [
        Metric(k, float(v), timestamp, step)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]


class Tracker:
    """Thin layer over `MlflowClient` with the experiment and the parent run of one search."""

    def __init__(self, uri: str, experiment: str, artifact_root: Path | None = None):
        logging.getLogger("alembic").setLevel(logging.WARNING)
        seed_sqlite_store(uri)
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            # A tracking server stores (and serves) artifacts itself; a local store keeps them in the work dir.
            location = artifact_root.as_uri() if artifact_root and not uri.startswith(("http://", "https://")) else None
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        self.parent_run_id: str | None = None

    def close_stale_runs(self) -> int:
        """Mark runs a crashed search left RUNNING as KILLED; returns how many."""
        stale = self.client.search_runs([self.experiment_id], "attributes.status = 'RUNNING'")
        for run in stale:
            self.end(run.info.run_id, "KILLED", tags={"state": "FAIL"} if PARENT_TAG in run.data.tags else None)
        return len(stale)

    def start_parent(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        """Open the search's parent run with the resolved config as params."""
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self.parent_run_id = run.info.run_id
        self._log_params(self.parent_run_id, params)
        return self.parent_run_id

    def start_child(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        """Open a trial's run under the parent."""
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={**tags, PARENT_TAG: self.parent_run_id or ""}
        )
        self._log_params(run.info.run_id, params)
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: dict[str, Any], step: int) -> None:
        """Numeric, finite metrics at `step` (tokens trained)."""
        batch = _finite_metrics(metrics, step, int(time.time() * 1000))
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def end(self, run_id: str, status: str, tags: dict[str, str] | None = None) -> None:
        """Set tags and close the run (FINISHED, FAILED or KILLED)."""
        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        self.client.set_terminated(run_id, status=status)

    def log_dict(self, run_id: str, data: Any, name: str) -> None:
        """Store `data` as a JSON or YAML artifact."""
        self.client.log_dict(run_id, data, name)

    def log_artifact(self, run_id: str, path: Path) -> None:
        self.client.log_artifact(run_id, str(path))

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        batch = [Param(k, json.dumps(v) if isinstance(v, list | dict) else str(v)) for k, v in params.items()]
        for i in range(0, len(batch), 100):  # MLflow caps a batch at 100 params
            self.client.log_batch(run_id, params=batch[i : i + 100])
