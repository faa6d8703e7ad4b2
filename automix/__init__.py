"""automix: search how to pre-train a language model for a data-constrained language.

    import automix
    result = automix.search(automix.load_config("examples/ar_en_cpu.yaml"))

The public API is re-exported here, lazily; the parts live in subpackages with private `_modules`
(docs/design.md, "Layout"): `config`, `samplers`, `study`, `tracking`, `trial`, `resources`,
`console`, `scheduling`, `driver`, `analysis`, `scaling`, `cli`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from automix._lazy import lazy_exports

# Exports load on first use (PEP 562): a Ray worker that unpickles a trial imports `automix.trial`,
# and must not pay for Ray's driver side, MLflow, the samplers and the μP tools on the way.
_EXPORTS = {
    "ConfigError": "automix.errors",
    "SearchConfig": "automix.config",
    "StudyConfig": "automix.config",
    "load_config": "automix.config",
    "SearchSpace": "automix.config",
    "load_space": "automix.config",
    "Workspace": "automix.study",
    "SearchResult": "automix.study",
    "Reporter": "automix.trial",
    "TrainerObjective": "automix.trial",
    "search": "automix.driver",
    "search_objective": "automix.driver",
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
    from automix.config import SearchConfig, SearchSpace, StudyConfig, load_config, load_space
    from automix.driver import search, search_objective
    from automix.errors import ConfigError
    from automix.scaling import transfer, verify_transfer
    from automix.study import SearchResult, Workspace
    from automix.trial import Reporter, TrainerObjective


__getattr__ = lazy_exports(__name__, _EXPORTS)
