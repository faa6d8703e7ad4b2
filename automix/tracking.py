"""MLflow tracking: one parent run per search, one child run per trial, logged from the driver.

Ray's own MLflow helpers read the experiment from the worker's environment and can leave runs
RUNNING; logging from a driver-side Tune callback through `MlflowClient` with explicit run ids
keeps a single writer on the store and closes every run. A tracking failure is logged as a
warning and never kills a trial or the search.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
import urllib.request
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from automix.config import ConfigError
from automix.searcher import FINAL_KEY, TRIAL_KEY, error_reason

log = logging.getLogger(__name__)
PARENT_TAG = "mlflow.parentRunId"


def default_tracking_uri(work_dir: Path) -> str:
    """Embedded sqlite store in the work directory (MLflow 3 refuses a bare ./mlruns file store)."""
    return f"sqlite:///{work_dir / 'mlflow.db'}"


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


def _safe(method):
    """Log and swallow tracking errors: losing a metric is better than losing a trial."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any store error must not reach training
            log.warning("MLflow tracking failed in %s: %s", method.__name__, e)
            return None

    return wrapper


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
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            location = artifact_root.as_uri() if artifact_root else None
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


class MlflowTrialCallback(Callback):
    """Ray Tune callback: a child run per trial, metrics per evaluation at step = tokens."""

    def __init__(self, tracker: Tracker, tags: dict[str, str], metrics: list[str]):
        self.tracker = tracker
        self.tags = tags
        self.metrics = metrics
        self.run_ids: dict[int, str] = {}  # Optuna trial number -> MLflow run id
        self._by_ray_id: dict[str, int] = {}
        self._logged: dict[str, dict] = {}  # run id -> metrics last logged

    def _number(self, trial) -> int:
        return int(trial.config.get(TRIAL_KEY, -1))

    @_safe
    def on_trial_start(self, iteration, trials, trial, **info):
        number = self._number(trial)
        params = {k: v for k, v in trial.config.items() if k != TRIAL_KEY}
        tags = {**self.tags, "optuna.trial_number": str(number), "ray.trial_id": trial.trial_id}
        self.run_ids[number] = self.tracker.start_child(f"trial-{number:04d}", params, tags)
        self._by_ray_id[trial.trial_id] = number

    @_safe
    def on_trial_result(self, iteration, trials, trial, result, **info):
        run_id = self.run_ids.get(self._by_ray_id.get(trial.trial_id, -1))
        if run_id and not result.get(FINAL_KEY) and "tokens" in result:
            self._logged[run_id] = _trial_metrics(result)
            self.tracker.log_metrics(run_id, self._logged[run_id], int(result["tokens"]))

    @_safe
    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        if not result.get(FINAL_KEY):
            self._finish(trial, "PRUNED")
            return
        values = [result.get(m) for m in self.metrics]
        if all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            self._finish(trial, "COMPLETE")
        else:  # the searcher records it FAIL too
            self._finish(trial, "FAIL", f"non-finite {self.metrics}: {values}")

    @_safe
    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "FAIL", error_reason(trial))

    def _finish(self, trial, state: str, reason: str | None = None) -> None:
        run_id = self.run_ids.get(self._by_ray_id.get(trial.trial_id, -1))
        if run_id is None:
            return
        result = trial.last_result or {}
        if result.get(FINAL_KEY):
            # Only what the last evaluation did not already log (e.g. a custom objective's extras).
            logged = self._logged.get(run_id, {})
            new = {k: v for k, v in _trial_metrics(result).items() if logged.get(k) != v}
            self.tracker.log_metrics(run_id, new, int(result.get("tokens", 0)))
        status = "FAILED" if state == "FAIL" else "FINISHED"
        self.tracker.end(run_id, status, tags={"state": state, **({"fail_reason": reason[:5000]} if reason else {})})


def _trial_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """Drop Ray's bookkeeping (time_this_iter_s, pid, ...) and keep the objective's metrics."""
    ray_keys = {
        "time_this_iter_s",
        "time_total_s",
        "timestamp",
        "training_iteration",
        "pid",
        "done",
        "iterations_since_restore",
        "time_since_restore",
        FINAL_KEY,
        "date",
        "hostname",
        "node_ip",
    }
    return {k: v for k, v in result.items() if k not in ray_keys}
