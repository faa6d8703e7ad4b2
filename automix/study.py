"""The Optuna study in persistent storage: open it, and get it ready for a new or resumed search."""

from __future__ import annotations

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from automix.config import ConfigError, SearchConfig

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def open_study_storage(url: str) -> BaseStorage:
    """An SQLAlchemy URL (sqlite, PostgreSQL, ...) or a journal file path (`*.log`, `journal:PATH`)."""
    if url.startswith("journal:") or url.endswith(".log"):
        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    # sqlite under parallel trials: wait for the lock instead of failing with "database is locked".
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return RDBStorage(url, engine_kwargs=engine_kwargs)


def prepare_study(storage: BaseStorage, name: str, settings: SearchConfig, resume: bool) -> int:
    """Check the study against `resume` and return how many trials are still to run.

    A new search refuses a study that already has trials (it would mix two searches). A resumed one
    keeps finished trials, marks trials left RUNNING by a crash as FAIL and re-queues their params.
    """
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return settings.n_trials
    if not study.trials:
        return settings.n_trials
    if not resume:
        raise ConfigError(
            f"study '{name}' already has {len(study.trials)} trials in this work directory: "
            "pass --resume to continue it, or set another study name or work_dir"
        )
    for trial in study.trials:
        if trial.state in (TrialState.RUNNING, TrialState.WAITING):
            if trial.state == TrialState.RUNNING:
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            study.enqueue_trial(trial.params, skip_if_exists=False)
    done = sum(t.state in FINISHED for t in study.trials)
    return max(0, settings.n_trials - done)
