"""The worker side of a trial: objectives (`objective(params, report) -> metrics`) and their Ray trainable.

A Ray worker imports only this package and the trainer, not the driver's search engine or MLflow.
"""

from automix.trial._objective import Objective, Reporter, TrainerObjective, cpu_threads

__all__ = ["Objective", "Reporter", "TrainerObjective", "cpu_threads"]
