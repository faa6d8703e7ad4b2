"""The worker side of a trial: objectives (`objective(params, report) -> metrics`) and their Ray trainable.

A Ray worker imports only this package and what its objective needs: the trainer (and torch) for
`TrainerObjective`, nothing more of automix's than `Reporter` for a user's own objective. Hence the
exports load on first use (PEP 562). `describe` and `recreate` turn a trial's trainer config into
plain records for its MLflow run and back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from automix._lazy import lazy_exports

_EXPORTS = {
    "Objective": "automix.trial._reporter",
    "Reporter": "automix.trial._reporter",
    "TrainerObjective": "automix.trial._objective",
    "cpu_threads": "automix.trial._objective",
    "DatasetRecord": "automix.trial._record",
    "TrialRecord": "automix.trial._record",
    "describe": "automix.trial._record",
}
__all__ = ["DatasetRecord", "Objective", "Reporter", "TrainerObjective", "TrialRecord", "cpu_threads", "describe"]

if TYPE_CHECKING:
    from automix.trial._objective import TrainerObjective, cpu_threads
    from automix.trial._record import DatasetRecord, TrialRecord, describe
    from automix.trial._reporter import Objective, Reporter


__getattr__ = lazy_exports(__name__, _EXPORTS)
