"""automix: search how to pre-train a language model for a data-constrained language.

import automix
result = automix.search(automix.load_config("examples/ar_en_cpu.yaml"))
result = automix.search_objective(my_objective, {"x": {"type": "float", "low": 0, "high": 1}}, n_trials=20)

The public API is re-exported here; the parts live in subpackages (docs/design.md, "Layout"):
`config`, `samplers`, `study`, `tracking`, `trial`, `engine`, `analysis`, `scaling`, with private
`_modules`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Exports load on first use (PEP 562): a Ray worker that unpickles a trial imports `automix.trial`,
# and must not pay for Ray's driver side, MLflow, the samplers and the μP tools on the way.
_EXPORTS = {
    "ConfigError": "automix.config",
    "SearchConfig": "automix.config",
    "StudyConfig": "automix.config",
    "load_config": "automix.config",
    "SearchSpace": "automix.config",
    "load_space": "automix.config",
    "Workspace": "automix.study",
    "SearchResult": "automix.study",
    "Reporter": "automix.trial",
    "TrainerObjective": "automix.trial",
    "search": "automix.engine",
    "search_objective": "automix.engine",
    "transfer": "automix.scaling",
    "verify_transfer": "automix.scaling",
}
__all__ = [
    "ConfigError",
    "Reporter",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "StudyConfig",
    "TrainerObjective",
    "Workspace",
    "load_config",
    "load_space",
    "search",
    "search_objective",
    "transfer",
    "verify_transfer",
]

if TYPE_CHECKING:
    from automix.config import ConfigError, SearchConfig, SearchSpace, StudyConfig, load_config, load_space
    from automix.engine import search, search_objective
    from automix.scaling import transfer, verify_transfer
    from automix.study import SearchResult, Workspace
    from automix.trial import Reporter, TrainerObjective


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'automix' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
