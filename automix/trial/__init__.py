"""The worker side of a trial: objectives (`objective(params, report) -> metrics`) and their Ray trainable.

A Ray worker imports only this package and the trainer, not the driver's search engine or MLflow.
`describe` and `recreate` turn a trial's trainer config into plain records for its MLflow run and back.
"""

from automix.trial._objective import Objective, Reporter, TrainerObjective, cpu_threads
from automix.trial._record import DatasetRecord, TrialRecord, describe

__all__ = ["DatasetRecord", "Objective", "Reporter", "TrainerObjective", "TrialRecord", "cpu_threads", "describe"]
