"""The bridge between Optuna and Ray Tune: the searcher over Optuna's ask/tell, the schedulers that
stop trials, and the Tune callbacks that track trials in MLflow and stop a failing search."""

from automix.scheduling._callbacks import (
    FailFast,
    FailureCallback,
    MlflowTrialCallback,
    RepeatedFailure,
    TrialLogging,
    trial_logging,
)
from automix.scheduling._schedulers import (
    StableASHA,
    StableMedianStoppingRule,
    TokenBudget,
    checkpoint_cadence,
    make_scheduler,
)
from automix.scheduling._searcher import StudySearcher, earlier_reports

__all__ = [
    "FailFast",
    "FailureCallback",
    "MlflowTrialCallback",
    "RepeatedFailure",
    "StableASHA",
    "StableMedianStoppingRule",
    "StudySearcher",
    "TokenBudget",
    "TrialLogging",
    "checkpoint_cadence",
    "earlier_reports",
    "make_scheduler",
    "trial_logging",
]
