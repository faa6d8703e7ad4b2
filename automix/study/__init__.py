"""The Optuna study in persistent storage: open it, prepare it for a search, read its results.

No Ray, no torch: the analyses read a study through this package alone.
"""

from automix.study._prepare import StudyState, check_study, prepare_study
from automix.study._results import SearchResult, best_trials, collect, trained
from automix.study._storage import StorageUnavailable, open_storage
from automix.study._workspace import Workspace

__all__ = [
    "SearchResult",
    "StorageUnavailable",
    "StudyState",
    "best_trials",
    "check_study",
    "collect",
    "open_storage",
    "prepare_study",
    "trained",
    "Workspace",
]
