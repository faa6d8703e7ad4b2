"""automix: search how to pre-train a language model for a data-constrained language.

import automix
result = automix.search(automix.load_config("examples/ar_en_cpu.yaml"))
result = automix.search(my_objective, automix.SearchSpace({...}), n_trials=20)
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# Exports load on first use (PEP 562): a Ray worker that unpickles a trial imports
# `automix.trainable`, and must not pay for MLflow, the samplers and the μP tools on the way.
_EXPORTS = {
    "ConfigError": "automix.config",
    "SearchConfig": "automix.config",
    "StudyConfig": "automix.config",
    "load_config": "automix.config",
    "Reporter": "automix.objective",
    "TrainerObjective": "automix.objective",
    "SearchResult": "automix.search",
    "search": "automix.search",
    "SearchSpace": "automix.space",
    "load_space": "automix.space",
    "transfer": "automix.transfer",
    "verify_transfer": "automix.verify",
}
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

if TYPE_CHECKING:
    from automix.config import ConfigError, SearchConfig, StudyConfig, load_config
    from automix.objective import Reporter, TrainerObjective
    from automix.search import SearchResult, search
    from automix.space import SearchSpace, load_space
    from automix.transfer import transfer
    from automix.verify import verify_transfer


class _Package(types.ModuleType):
    """Keeps `automix.search` and `automix.transfer` the functions once their submodules are imported.

    Importing a submodule binds it on its package under its own name, which would shadow the
    function of the same name exported here.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'automix' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
