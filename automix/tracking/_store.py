"""MLflow tracking: one parent run per search, one run per trial, logged from the driver.

Logging from a driver-side Tune callback through `MlflowClient` with explicit run ids keeps a
single writer on the store and closes every run (Ray's own MLflow helpers log from the workers and
can leave runs RUNNING). A trial's run names its search's run in the `automix.search_run_id` tag,
not MLflow's `mlflow.parentRunId`: MLflow's UI would fold the trials, which are what a user compares,
under their parent; `automix ui` opens a view (`trials_view_url`) listing them as rows.
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
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from automix.config._study import default_cache_dir
from automix.errors import ConfigError

log = logging.getLogger(__name__)
PARENT_TAG = "mlflow.parentRunId"  # how stores written before automix.search_run_id nested trials
SEARCH_TAG = "automix.search_run_id"  # on a trial's run: the run id of its search (the parent run)
ROLE_TAG = "automix.role"  # "search" on a parent run, "trial" on a trial's run
KIND_TAG = "mlflow.experimentKind"  # MLflow 3's UI shows a GenAI (traces) page unless told otherwise
VIEW_KEY = "automix-trials"  # the shared view of the trials: experiment tag mlflow.sharedViewState.<key>
BEST_TAG = "automix.best"  # "true" on the run of the study's best trial, on no other
# Shown after the params and the searched metrics: how a trial ended, how far it got, its T and model size.
COLUMNS = ("tags.`state`", "metrics.`tokens`", "metrics.`budget/train_tokens`", "metrics.`model/parameters`")
FIRST_COLUMNS = ("attributes.`Run Name`", "runDateAndNestInfo", "duration")  # the UI's ids: name, Created, Duration


def seed_sqlite_store(uri: str) -> None:
    """Give a new sqlite tracking store MLflow's schema by copying an empty, migrated one.

    MLflow builds a new store by running each of its alembic migrations (most of a small search's
    start-up: BENCHMARKS.md "Orchestration overhead"); the result is the same for every store of one
    MLflow version, so it is built once per version in the cache and copied. Existing stores and
    other URIs are left alone.
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


PERMANENT_ERRORS = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST"}


def refused_for_good(error: Exception) -> bool:
    """Whether MLflow refused a record for good (a bad value, a duplicate): retrying cannot help."""
    return isinstance(error, MlflowException) and error.error_code in PERMANENT_ERRORS


def is_trial(tags: dict[str, str]) -> bool:
    """Whether a run's tags make it a trial's run (this layout, or the older nested one)."""
    return SEARCH_TAG in tags or PARENT_TAG in tags


def trials_view_state(params: list[str], metrics: list[str]) -> dict[str, Any]:
    """MLflow's shared view state for a search's trials: one row per trial, in trial order,
    with the trial's state, the searched metrics, its tokens, T and model size, and each param."""
    columns = [c for c in COLUMNS if c.startswith("tags.")] + [f"metrics.`{m}`" for m in metrics]
    columns += [c for c in COLUMNS if c not in columns] + [f"params.`{p}`" for p in params]
    return {
        "searchFilter": f"tags.`{ROLE_TAG}` = 'trial'",
        "orderByKey": "tags.`mlflow.runName`",  # trial-0000, trial-0001, ...: the study's order
        "orderByAsc": True,
        "selectedColumns": columns,
        # The UI sizes only the columns it is given an order for (the rest move to the end): its
        # 100 px cut a loss to "1.63151688..." and a param to "0.01138731...".
        "columnOrder": [*FIRST_COLUMNS, *columns],
        "columnWidths": dict.fromkeys(columns, 150),
        "runListHidden": False,
        "viewMaximized": False,
    }


def trials_view_url(server: str, experiment_id: str) -> str:
    """The UI page of an experiment's trials: the classic-ML runs table with the trials' view."""
    # workflowType: MLflow 3.17's UI picks its GenAI or classic-ML pages from this parameter (else
    # from the browser's last choice, GenAI by default); viewStateShareKey loads the experiment
    # tag `trials_view_state` wrote (columns, filter, order), as MLflow's own "Share view" does.
    query = f"workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


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
    """Thin layer over `MlflowClient` with the experiment and the parent run of one search.

    `Tracker.open(uri, experiment)` opens the experiment, creating it (and a new sqlite store) if
    absent; `Tracker.existing(uri, experiment)` reads a store as it is and creates nothing.
    """

    def __init__(self, uri: str, experiment_id: str, client: MlflowClient | None = None):
        self.uri = uri
        self.client = client or MlflowClient(tracking_uri=uri)
        self.experiment_id = experiment_id
        self.parent_run_id: str | None = None

    @classmethod
    def open(cls, uri: str, experiment: str, artifact_root: Path | None = None) -> Tracker:
        """`experiment` in the store at `uri`, both created if absent (a local store's artifacts in `artifact_root`)."""
        logging.getLogger("alembic").setLevel(logging.WARNING)
        seed_sqlite_store(uri)
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return cls(uri, found.experiment_id, client)
        # A tracking server stores (and serves) artifacts itself; a local store keeps them in the work dir.
        location = artifact_root.as_uri() if artifact_root and not uri.startswith(("http://", "https://")) else None
        tags = {KIND_TAG: "custom_model_development"}
        return cls(uri, client.create_experiment(experiment, artifact_location=location, tags=tags), client)

    @classmethod
    def existing(cls, uri: str, experiment: str | None = None) -> Tracker | None:
        """The store at `uri` as it is, on `experiment` (None: the store's only one besides Default).

        Nothing is created, not even an empty sqlite file; None when there is no such store or experiment.
        """
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
            return None
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment) if experiment else None
        if found is None and experiment is None:
            named = [e for e in client.search_experiments() if e.name != "Default"]
            found = named[0] if len(named) == 1 else None
        return None if found is None else cls(uri, found.experiment_id, client)

    def experiment_tags(self) -> dict[str, str]:
        """The experiment's tags (its trials' view among them)."""
        return dict(self.client.get_experiment(self.experiment_id).tags)

    def search_config(self, study: str) -> dict[str, Any] | None:
        """The resolved config (`config.json`) the latest search of `study` logged here; None without one.

        Raises:
            ConfigError: the search run is there but its artifact cannot be read (a moved work dir
                moves the artifact store with it).
        """
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"attributes.run_name = 'search-{study}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = self.client.download_artifacts(runs[0].info.run_id, "config.json", tmp)
            except MlflowException as e:
                raise ConfigError(f"cannot read the config of study '{study}' ({e}): pass --config CONFIG") from None
            return json.loads(Path(path).read_text())

    def close_stale_runs(self) -> int:
        """Mark runs a crashed search left RUNNING as KILLED; returns how many."""
        stale = self.client.search_runs([self.experiment_id], "attributes.status = 'RUNNING'")
        for run in stale:
            self.end(run.info.run_id, "KILLED", tags={"state": "FAIL"} if is_trial(run.data.tags) else None)
        return len(stale)

    def start_parent(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        """Open the search's parent run with the resolved config as params."""
        run = self.client.create_run(self.experiment_id, run_name=name, tags={**tags, ROLE_TAG: "search"})
        self.parent_run_id = run.info.run_id
        self._log_params(self.parent_run_id, params)
        return self.parent_run_id

    def start_child(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        """Open a trial's run, tagged with its search's parent run (not nested under it, so the UI lists it)."""
        tags = {**tags, ROLE_TAG: "trial", SEARCH_TAG: self.parent_run_id or ""}
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self._log_params(run.info.run_id, params)
        return run.info.run_id

    def set_trials_view(self, params: list[str], metrics: list[str]) -> None:
        """Store the trials' view (`trials_view_state`) on the experiment, for `trials_view_url`."""
        state = json.dumps(trials_view_state(params, metrics))
        self.client.set_experiment_tag(self.experiment_id, f"mlflow.sharedViewState.{VIEW_KEY}", state)
        self.client.set_experiment_tag(self.experiment_id, KIND_TAG, "custom_model_development")

    def unnest_trials(self) -> int:
        """Give the trial runs of an older store (nested with `mlflow.parentRunId`) this layout's
        tags and un-nest them, so that the trials' view lists them; returns how many changed."""
        changed = 0
        for run in self.client.search_runs([self.experiment_id], max_results=5000):
            tags = run.data.tags
            if ROLE_TAG in tags:
                continue
            role = {ROLE_TAG: "trial", SEARCH_TAG: tags[PARENT_TAG]} if PARENT_TAG in tags else {ROLE_TAG: "search"}
            self.client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in role.items()])
            if PARENT_TAG in tags:
                self.client.delete_tag(run.info.run_id, PARENT_TAG)
            changed += 1
        return changed

    def trial_keys(self) -> tuple[list[str], list[str]]:
        """The params and metrics the experiment's trial runs have (for a store without a view yet)."""
        params: dict[str, None] = {}
        metrics: dict[str, None] = {}
        for run in self.client.search_runs([self.experiment_id], max_results=200):
            if is_trial(run.data.tags):
                params.update(dict.fromkeys(sorted(run.data.params)))
                metrics.update(dict.fromkeys(sorted(run.data.metrics)))
        return list(params), list(metrics)

    def mark_best(self, study: str, number: int | None) -> str | None:
        """Tag the latest run of trial `number` of `study` `automix.best=true`, and no other run of it.

        Args:
            study: the study whose trials are looked at (an experiment may hold several).
            number: the best trial's Optuna number; None when the study has no best trial.

        Returns:
            The tagged run's id, or None.
        """
        trials = f"tags.`{ROLE_TAG}` = 'trial' and tags.`study` = '{study}'"
        for run in self.client.search_runs([self.experiment_id], f"{trials} and tags.`{BEST_TAG}` = 'true'"):
            self.client.delete_tag(run.info.run_id, BEST_TAG)
        if number is None:
            return None
        found = self.client.search_runs(
            [self.experiment_id],
            f"{trials} and tags.`optuna.trial_number` = '{number}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not found:
            return None
        self.client.set_tag(found[0].info.run_id, BEST_TAG, "true")
        return found[0].info.run_id

    def register_best(self, study: str, run_id: str | None) -> str | None:
        """Register the best run's `model/` as a version of the model `automix-<study>`, aliased `best`.

        The Model Registry is where MLflow users look for the model to deploy; a resumed search
        that finds the same best adds no version, a better one moves the alias.

        Args:
            study: the study (names the registered model).
            run_id: the best trial's run; nothing happens without one or without a logged model.

        Returns:
            "automix-<study>/<version>", or None when nothing was registered.
        """
        if run_id is None or not self.client.list_artifacts(run_id, "model"):
            return None
        name = f"automix-{study}"
        if not self.client.search_registered_models(f"name = '{name}'"):
            self.client.create_registered_model(name, tags={"study": study}, description=f"best model of '{study}'")
        found = self.client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        version = found[0] if found else self.client.create_model_version(name, f"runs:/{run_id}/model", run_id)
        self.client.set_registered_model_alias(name, "best", version.version)
        return f"{name}/{version.version}"

    def log_metrics(self, run_id: str, metrics: dict[str, Any], step: int) -> None:
        """Numeric, finite metrics at `step` (tokens trained)."""
        batch = _finite_metrics(metrics, step, int(time.time() * 1000))
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Set string tags on a run."""
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

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
