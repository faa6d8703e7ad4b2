"""The Optuna study in persistent storage: open it, and get it ready for a new or resumed search."""

from __future__ import annotations

import time
from dataclasses import dataclass

import optuna
import sqlalchemy.exc
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from automix.config import ConfigError, SearchConfig
from automix.results import trained
from automix.space import SearchSpace

INVOCATION_ATTR = "automix:invocations"


@dataclass
class StudyState:
    """Where a search starts: trials still to train, tokens already spent, which invocation this is."""

    remaining: int
    tokens_spent: float
    invocation: int


def open_study_storage(url: str, attempts: int = 5) -> BaseStorage:
    """An SQLAlchemy URL (sqlite, PostgreSQL, ...) or a journal file path (`*.log`, `journal:PATH`)."""
    for attempt in range(attempts):
        try:
            if url.startswith("journal:") or url.endswith(".log"):
                return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
            # sqlite under parallel writers: wait for the lock instead of failing with "database is locked".
            engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
            return RDBStorage(url, engine_kwargs=engine_kwargs)
        except Exception as e:  # noqa: BLE001 - SQLAlchemy, driver and OS errors all mean "can't open it"
            error = e
            if not _lost_creation_race(e):
                break
            time.sleep(0.1 * (attempt + 1))
    reason = str(error).splitlines()[0][:200]
    raise ConfigError(f"cannot open the Optuna storage {url} ({reason}): check the URL and the server") from None


def _lost_creation_race(error: Exception) -> bool:
    """Optuna creates a new database's tables without a lock, so a second process opening it at the
    same moment (a driver, `automix ui`, a script polling the study) fails with a table that "already
    exists" or a duplicate schema version row; the schema is there on the next try."""
    return isinstance(error, sqlalchemy.exc.IntegrityError) or (
        isinstance(error, sqlalchemy.exc.DBAPIError) and "already exists" in str(error)
    )


def _check_same_space(study: optuna.Study, space: SearchSpace) -> None:
    """Every trial that was asked for params must have been asked over exactly this space."""
    for trial in study.trials:
        if trial.distributions and trial.distributions != space.distributions:
            raise ConfigError(
                f"study '{study.study_name}' was searched over another space (trial {trial.number}: "
                f"{sorted(trial.distributions)}): resume with the same space, or use a new study name"
            )


def check_study(
    storage: BaseStorage, name: str, settings: SearchConfig, resume: bool, space: SearchSpace, join: bool = False
) -> None:
    """Refuse, without writing anything, a study this search must not touch.

    A new search refuses a study that already has trials (it would mix two searches) unless it
    resumes or joins it; then it must have the same directions and search space.
    """
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return
    directions = ["minimize" if m == "min" else "maximize" for m in settings.modes]
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(f"study '{name}' exists with other directions: use another study name or work_dir")
    if study.trials and not (resume or join):
        raise ConfigError(
            f"study '{name}' already has {len(study.trials)} trials in this work directory: "
            "pass --resume to continue it, or set another study name or work_dir"
        )
    _check_same_space(study, space)


def prepare_study(storage: BaseStorage, name: str, settings: SearchConfig, join: bool = False) -> StudyState:
    """Create or load the study (after `check_study`) and return how many trials are still to train.

    A new study gets the configured known points enqueued. A resumed one keeps finished trials,
    marks trials left RUNNING by a crash as FAIL and re-queues their params, so the study reaches
    `n_trials` trained trials. A joining driver leaves RUNNING trials alone: other drivers own them.
    """
    directions = ["minimize" if m == "min" else "maximize" for m in settings.modes]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions, load_if_exists=True)
    if not study.trials:
        for params in settings.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    for trial in study.trials if not join else ():
        if trial.state == TrialState.RUNNING:
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number})
    invocation = int(study.user_attrs.get(INVOCATION_ATTR, 0))
    study.set_user_attr(INVOCATION_ATTR, invocation + 1)
    done = sum(trained(t) for t in study.trials)
    spent = sum(t.user_attrs.get("tokens", 0.0) for t in study.trials)
    return StudyState(max(0, settings.n_trials - done), spent, invocation)
