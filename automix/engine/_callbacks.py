"""Ray Tune callbacks of a search: MLflow runs per trial, failure reasons for the searcher, and
`FailFast`, which stops a search whose first trials all fail the same way.

Both run on the driver. `MlflowTrialCallback` keeps a single writer on the MLflow store and closes
every run it opens (Ray's own MLflow helpers log from the workers and can leave runs RUNNING); a
tracking failure never kills a trial or the search: records wait in a queue until the store
answers again.
"""

from __future__ import annotations

import logging
import shutil
from collections import deque
from collections.abc import Callable
from pathlib import Path

from mlflow.exceptions import MlflowException
from ray.tune import Callback
from ray.tune.stopper import Stopper

from automix.config._study import ConfigError
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


def traceback_path(errors_dir: Path, trial) -> Path:
    """Where a failed trial's full traceback is kept: WORK/errors/trial-NNNN.txt."""
    return errors_dir / f"trial-{int(trial.config.get(TRIAL_KEY, -1)):04d}.txt"


def save_traceback(errors_dir: Path, trial) -> Path | None:
    """Copy Ray's error file of a failed trial (under Ray's session folder) into the work directory."""
    source = getattr(trial, "error_file", None)
    if not source or not Path(source).is_file():
        return None
    target = traceback_path(errors_dir, trial)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    except OSError:
        return Path(source)
    return target


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
        self._view = False  # the experiment's trials view (see Tracker.set_trials_view) is written

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
        if not self._view:  # the first trial names the params: the UI's columns
            self._view = True
            self._submit(lambda: self.tracker.set_trials_view(list(params), self.metrics), "the trials view")

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
