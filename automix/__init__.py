"""automix: search how to pre-train a language model for a data-constrained language.

import automix
result = automix.search(automix.load_config("examples/ar_en_cpu.yaml"))
result = automix.search(my_objective, automix.SearchSpace({...}), n_trials=20)
"""

from automix.config import ConfigError, SearchConfig, StudyConfig, load_config
from automix.objective import Reporter, TrainerObjective
from automix.search import SearchResult, search
from automix.space import SearchSpace, load_space
from automix.transfer import transfer
from automix.verify import verify_transfer

__all__ = [
    "ConfigError",
    "Reporter",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "StudyConfig",
    "TrainerObjective",
    "load_config",
    "load_space",
    "search",
    "transfer",
    "verify_transfer",
]
