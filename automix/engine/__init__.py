"""The search engine (driver side): Optuna suggests, Ray Tune runs and stops trials, MLflow records them."""

from automix.engine._schedulers import StableASHA, StableMedianStoppingRule, TokenBudget, make_scheduler
from automix.engine._search import search, search_objective
from automix.engine._searcher import StudySearcher

__all__ = [
    "StableASHA",
    "StableMedianStoppingRule",
    "StudySearcher",
    "TokenBudget",
    "make_scheduler",
    "search",
    "search_objective",
]
