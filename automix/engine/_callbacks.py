"""Ray Tune callbacks of a search: MLflow runs per trial, and failure reasons for the searcher.

Both run on the driver. `MlflowTrialCallback` keeps a single writer on the MLflow store and closes
every run it opens (Ray's own MLflow helpers log from the workers and can leave runs RUNNING); a
tracking failure never kills a trial or the search: records wait in a queue until the store
answers again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from mlflow.exceptions import MlflowException
from ray.tune import Callback

from automix.protocol import FINAL_KEY, NODE_KEYS, TRIAL_KEY, error_reason, final_state, trial_metrics, user_params
from automix.tracking._store import Tracker

log = logging.getLogger(__name__)
_PERMANENT_ERRORS = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST"}


class FailureCallback(Callback):
    """Hands a failed trial's exception to the searcher, which records it as the FAIL reason."""

    def __init__(self, searcher):
        self.searcher = searcher

    def on_trial_error(self, iteration, trials, trial, **info):
        self.searcher.record_failure(trial.trial_id, error_reason(getattr(trial, "error_file", None)))



class MlflowTrialCallback(Callback):
    """Ray Tune callback: a child run per trial, metrics per evaluation at step = tokens.

    Every record is an operation in an ordered queue. If the store is unreachable, training goes on
    and records wait; they are written, in order, as soon as a write succeeds again. Whatever is
    still unwritten when the search ends is listed by `unwritten()` (and saved by the search).
    """

    def __init__(self, tracker: Tracker, tags: dict[str, str], metrics: list[str]):
        self.tracker = tracker
        self.tags = tags
        self.metrics = metrics
        self.run_ids: dict[int, str] = {}  # Optuna trial number -> MLflow run id
        self._by_ray_id: dict[str, int] = {}
        self._logged: dict[str, dict] = {}  # run id -> metrics last logged
        self._backlog: deque[tuple[Callable[[], None], str]] = deque()
        self._down = False

    def drain(self) -> int:
        """Write queued records in order, stopping at the first failure; returns how many still wait."""
        while self._backlog:
            op, what = self._backlog[0]
            try:
                op()
            except MlflowException as e:
                if e.error_code in _PERMANENT_ERRORS:  # it will never succeed: drop it, say so
                    log.warning("MLflow refused %s: %s", what, e)
                    self._backlog.popleft()
                    continue
                return self._went_down(e)
            except Exception as e:  # noqa: BLE001 - connection, driver and lock errors: retry later
                return self._went_down(e)
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
        tags = {**self.tags, "optuna.trial_number": str(number), "ray.trial_id": trial.trial_id}

        def start() -> None:
            if number not in self.run_ids:
                self.run_ids[number] = self.tracker.start_child(f"trial-{number:04d}", params, tags)

        self._submit(start, f"trial {number}: run start")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get(FINAL_KEY) or "tokens" not in result:
            return
        number, metrics, step = self._by_ray_id.get(trial.trial_id, -1), trial_metrics(result), int(result["tokens"])

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

    def _finish(self, trial, result: dict, state: str, reason: str | None = None) -> None:
        number = self._by_ray_id.get(trial.trial_id, -1)

        def finish() -> None:
            run_id = self.run_ids[number]
            if result.get(FINAL_KEY):
                # Only what the last evaluation did not already log (e.g. a custom objective's extras).
                logged = self._logged.get(run_id, {})
                new = {k: v for k, v in trial_metrics(result).items() if logged.get(k) != v}
                self.tracker.log_metrics(run_id, new, int(result.get("tokens", 0)))
            tags = {"state": state, **{f"ray.{k}": result[k] for k in NODE_KEYS if k in result}}
            if reason:
                tags["fail_reason"] = reason[:5000]
            self.tracker.end(run_id, "FAILED" if state == "FAIL" else "FINISHED", tags=tags)

        self._submit(finish, f"trial {number}: end ({state})")
