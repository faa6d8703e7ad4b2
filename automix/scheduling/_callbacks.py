"""Ray Tune callbacks of a search: MLflow runs per trial, failure reasons for the searcher, and
`FailFast`, which stops a search whose first trials all fail the same way.

Both run on the driver. `MlflowTrialCallback` keeps a single writer on the MLflow store (beside
MLflow's system-metrics monitors, which sample into runs it opened) and closes every run it opens
(Ray's own MLflow helpers log from the workers and can leave runs RUNNING); a tracking failure
never kills a trial or the search: records wait in a queue until the store answers again.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.stopper import Stopper

from automix.console import save_traceback
from automix.errors import ConfigError
from automix.protocol import (
    FINAL_KEY,
    NODE_KEYS,
    REQUEUED_KEY,
    TRIAL_KEY,
    error_reason,
    final_state,
    trial_metrics,
    user_params,
)
from automix.tracking._store import Tracker, refused_for_good
from automix.tracking._system import SystemMetrics
from automix.tracking._trial import SEARCHED_TAG, TOKENIZER_TAG, dataset_input, log_trial_artifacts, trial_params

log = logging.getLogger(__name__)


class FailureCallback(Callback):
    """Hands a failed trial's exception to the searcher, which records it as the FAIL reason."""

    def __init__(self, searcher):
        self.searcher = searcher

    def on_trial_error(self, iteration, trials, trial, **info):
        self.searcher.record_failure(trial.trial_id, error_reason(getattr(trial, "error_file", None)))


class RepeatedFailure(ConfigError):
    """The first trials of a search all failed with the same error: the objective cannot run as set up."""


class FailFast(Callback, Stopper):
    """Stops the search when its first `first` trials all fail with the same error.

    One error on every trial (a module the workers cannot import, a missing file, a typo in the
    objective) would otherwise fail trial after trial until `n_trials`. A trial that ends any other
    way (complete, pruned, a different error) means the objective can run, and the guard stands
    down. It is also the search's Stopper: `stop_all` ends the run once it has tripped, and the
    search raises `error` (one line, exit 2 in the CLI).
    """

    def __init__(self, first: int, errors_dir: Path):
        self.first = first
        self.errors_dir = errors_dir
        self.reasons: list[str] = []
        self.cleared = False
        self.error: RepeatedFailure | None = None
        self._example: Path | None = None

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.cleared = True

    def on_trial_error(self, iteration, trials, trial, **info):
        saved = save_traceback(self.errors_dir, trial)
        if self.cleared or self.error is not None:
            return
        self._example = self._example or saved
        self.reasons.append(error_reason(getattr(trial, "error_file", None)) or "unknown error")
        if len(set(self.reasons)) > 1:
            self.cleared = True
        elif len(self.reasons) >= self.first:
            where = f" (full traceback: {self._example})" if self._example else ""
            self.error = RepeatedFailure(
                f"the first {len(self.reasons)} trials all failed with {self.reasons[0]}{where}: "
                "the search stopped; fix the objective, then run again with resume=True"
            )

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        """Tune's question after every step: end the whole run? Yes once the guard has tripped."""
        return self.error is not None


STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}  # a trial's state → its run's status


@dataclass(frozen=True)
class TrialLogging:
    """What a trial's run records beyond its params and metrics (automix/tracking/_trial.py)."""

    describe: Callable[..., Any] | None = None  # objective.describe(params, number, requeued_from): a TrialRecord
    log_models: bool = True  # a COMPLETE trial's checkpoint and tokenizer as artifacts
    system_metrics: bool | str = "auto"  # MLflow's system metrics; auto: for trials that use a GPU


def trial_logging(objective: Any, tracking: dict[str, Any] | None, local: bool) -> TrialLogging:
    """The trial logging of a search: its objective's `describe` (if it has one) and its config's
    `tracking` settings. On a cluster (`local` False) `auto` leaves system metrics off: the driver
    would measure its own node, not the trials'."""
    tracking = tracking or {}
    system = tracking.get("system_metrics", "auto")
    return TrialLogging(
        getattr(objective, "describe", None),
        tracking.get("log_models", True),
        system if local or system != "auto" else False,
    )


class MlflowTrialCallback(Callback):
    """Ray Tune callback: a run per trial, metrics per evaluation at step = tokens.

    A trial's run gets its effective config, derived sizes and dataset inputs when it starts, and
    its result, learning curve and (if COMPLETE) checkpoint when it ends; its status says how it
    ended: FINISHED (COMPLETE), KILLED (PRUNED: stopped early) or FAILED, so the UI tells them apart.
    Every record is an operation in an ordered queue. If the store is unreachable, training goes on
    and records wait; they are written, in order, as soon as a write succeeds again. Whatever is
    still unwritten when the search ends is listed by `unwritten()` (and saved by the search).
    """

    def __init__(self, tracker: Tracker, tags: dict[str, str], metrics: list[str], logging: TrialLogging | None = None):
        self.tracker = tracker
        self.tags = tags
        self.metrics = metrics
        self.logging = logging or TrialLogging()
        self.system = SystemMetrics(tracker.uri)
        self.run_ids: dict[int, str] = {}  # Optuna trial number -> MLflow run id
        self._by_ray_id: dict[str, int] = {}
        self._logged: dict[str, dict] = {}  # run id -> metrics last logged
        self._trials: dict[int, dict[str, Any]] = {}  # trial number -> params, record, history (until it ends)
        self._backlog: deque[tuple[Callable[[], None], str]] = deque()
        self._down = False
        self._view = False  # the experiment's trials view (see Tracker.set_trials_view) is written
        self.seconds = 0.0  # spent on the driver describing trials and writing to MLflow

    def drain(self) -> int:
        """Write queued records in order, stopping at the first failure; returns how many still wait."""
        while self._backlog:
            op, what = self._backlog[0]
            start = time.perf_counter()
            try:
                op()
            except Exception as e:  # noqa: BLE001 - connection, driver and lock errors: retry later
                if refused_for_good(e):  # it will never succeed: drop it, say so
                    log.warning("MLflow refused %s: %s", what, e)
                    self._backlog.popleft()
                    continue
                return self._went_down(e)
            finally:
                self.seconds += time.perf_counter() - start
            self._backlog.popleft()
            self._down = False
        return 0

    def unwritten(self) -> list[str]:
        """Descriptions of the records not written yet."""
        return [what for _, what in self._backlog]

    def _went_down(self, error: Exception) -> int:
        if not self._down:
            log.warning("MLflow unreachable (%s): records are queued until it answers again", error)
        self._down = True
        return len(self._backlog)

    def _submit(self, op: Callable[[], None], what: str) -> None:
        self._backlog.append((op, what))
        self.drain()

    def on_trial_start(self, iteration, trials, trial, **info):
        number = int(trial.config.get(TRIAL_KEY, -1))
        self._by_ray_id[trial.trial_id] = number
        params = user_params(trial.config)
        record = self._describe(params, number, trial.config.get(REQUEUED_KEY))
        self._trials[number] = {"params": params, "record": record, "history": []}
        tags = {**self.tags, "optuna.trial_number": str(number), "ray.trial_id": trial.trial_id}
        tags[SEARCHED_TAG] = json.dumps(list(params))
        if record is not None:
            tags[TOKENIZER_TAG] = record.tokenizer
        if not self._view:  # the first trial names the params: the UI's columns
            self._view = True
            self._submit(lambda: self.tracker.set_trials_view(list(params), self.metrics), "the trials view")
        run_params = trial_params(params, record.config if record else None)

        def start() -> None:
            if number not in self.run_ids:
                self.run_ids[number] = self.tracker.start_child(f"trial-{number:04d}", run_params, tags)

        self._submit(start, f"trial {number}: run start")
        if record is not None:
            self._submit(lambda: self._log_record(number, record), f"trial {number}: config, sizes and data")
        if self._monitored(trial):
            self._submit(lambda: self.system.start(self.run_ids[number]), f"trial {number}: system metrics")

    def _describe(self, params: dict, number: int, requeued_from: int | None):
        """The objective's record of a trial (None without `describe`); a failure costs the record only."""
        if self.logging.describe is None:
            return None
        start = time.perf_counter()
        try:
            return self.logging.describe(params, number, requeued_from)
        except Exception as e:  # noqa: BLE001 - tracking never fails a trial
            log.warning("MLflow: trial %d is logged without its config and data (%s: %s)", number, type(e).__name__, e)
            return None
        finally:
            self.seconds += time.perf_counter() - start

    def _log_record(self, number: int, record) -> None:
        run_id = self.run_ids[number]
        self.tracker.log_metrics(run_id, record.derived, 0)
        inputs = [dataset_input(asdict(d), record.tokenizer) for d in record.datasets]
        self.tracker.client.log_inputs(run_id, datasets=inputs)

    def _monitored(self, trial) -> bool:
        """Whether a trial's run gets system metrics: `system_metrics`, where auto means a GPU trial."""
        wanted = self.logging.system_metrics
        if wanted == "auto":
            return trial.placement_group_factory.required_resources.get("GPU", 0) > 0
        return bool(wanted)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get(FINAL_KEY) or "tokens" not in result:
            return
        number, metrics, step = self._by_ray_id.get(trial.trial_id, -1), trial_metrics(result), int(result["tokens"])
        if number in self._trials:
            self._trials[number]["history"].append(metrics)

        def log_metrics() -> None:
            run_id = self.run_ids[number]
            self.tracker.log_metrics(run_id, metrics, step)
            self._logged[run_id] = metrics

        self._submit(log_metrics, f"trial {number}: metrics at {step} tokens")

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = dict(trial.last_result or {})
        self._finish(trial, result, *final_state(result, self.metrics))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, dict(trial.last_result or {}), "FAIL", error_reason(getattr(trial, "error_file", None)))

    def on_experiment_end(self, trials, **info):
        self.system.stop_all()
        if self.tracker.parent_run_id is not None:  # the search's run: what tracking its trials cost
            seconds = {"tracking_seconds": self.seconds}
            self._submit(lambda: self.tracker.log_metrics(self.tracker.parent_run_id, seconds, 0), "tracking time")

    def _finish(self, trial, result: dict, state: str, reason: str | None = None) -> None:
        number = self._by_ray_id.get(trial.trial_id, -1)
        if number in self.run_ids:
            self.system.stop(self.run_ids[number])  # its last sample, before the run closes

        def final_metrics() -> None:
            run_id = self.run_ids[number]
            if result.get(FINAL_KEY):
                # Only what the last evaluation did not already log (e.g. a custom objective's extras).
                logged = self._logged.get(run_id, {})
                new = {k: v for k, v in trial_metrics(result).items() if logged.get(k) != v}
                self.tracker.log_metrics(run_id, new, int(result.get("tokens", 0)))

        def end() -> None:
            tags = {"state": state, **{f"ray.{k}": result[k] for k in NODE_KEYS if k in result}}
            if reason:
                tags["fail_reason"] = reason[:5000]
            self.tracker.end(self.run_ids[number], STATUS[state], tags=tags)

        self._submit(final_metrics, f"trial {number}: final metrics ({state})")
        artifacts = self._artifacts(number, result, state, reason)
        self._submit(
            lambda: log_trial_artifacts(self.tracker.client, self.run_ids[number], *artifacts),
            f"trial {number}: artifacts",
        )
        self._submit(end, f"trial {number}: end ({state})")

    def _artifacts(self, number: int, result: dict, state: str, reason: str | None) -> tuple:
        """`log_trial_artifacts`' arguments after `run_id`: result.json's content, metrics, checkpoint files."""
        trial = self._trials.pop(number, {"params": {}, "record": None, "history": []})
        record = trial["record"]
        content: dict[str, Any] = {"trial": number, "state": state, "params": trial["params"]}
        content["metrics"] = trial_metrics(result)
        if reason:
            content["fail_reason"] = reason
        content["history"] = trial["history"]
        if record is not None:
            content |= {"config": record.config, "derived": record.derived, "tokenizer": record.tokenizer}
            content["datasets"] = [asdict(d) for d in record.datasets]
        keep = record is not None and state == "COMPLETE" and self.logging.log_models
        return content, self.metrics, record.checkpoint_files if keep else []
