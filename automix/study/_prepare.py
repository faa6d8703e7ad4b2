"""The Optuna study in persistent storage: open it, and get it ready for a new or resumed search."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from automix.config._space import SearchSpace
from automix.config._study import SearchConfig
from automix.errors import ConfigError
from automix.protocol import REQUEUED_FROM, trained_tokens
from automix.study._results import trained

INVOCATION_ATTR = "automix:invocations"


@dataclass
class StudyState:
    """Where a search starts: trials still to train, tokens already spent, which invocation this is."""

    remaining: int
    tokens_spent: float
    invocation: int


def _check_same_space(study: optuna.Study, space: SearchSpace) -> None:
    """Every trial that trained (COMPLETE or PRUNED) must have been asked over exactly this space.

    A crash or a database outage in the middle of Optuna's suggestions leaves a RUNNING (later FAIL)
    trial with only some of the params: it never trained, so it says nothing about the space.
    """
    for trial in study.trials:
        if trained(trial) and trial.distributions != space.distributions:
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
        where = f"study '{name}' already has {len(study.trials)} trials"
        other = "or set another study name or work_dir"
        raise ConfigError(f"{where}: pass resume=True to continue it, {other}")
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
            study.tell(trial.number, state=TrialState.FAIL)
            # A crash between Optuna's ask and its suggestions leaves a trial without params: it
            # never trained, so there is nothing to re-run.
            if trial.params:
                study.enqueue_trial(trial.params, user_attrs={REQUEUED_FROM: trial.number})
    invocation = int(study.user_attrs.get(INVOCATION_ATTR, 0))
    study.set_user_attr(INVOCATION_ATTR, invocation + 1)
    done = sum(trained(t) for t in study.trials)
    spent = sum(trained_tokens(t.user_attrs) for t in study.trials)
    return StudyState(max(0, settings.n_trials - done), spent, invocation)
