"""MLflow tracking: the store of one study (an embedded sqlite file or a server). MLflow only: no Ray, no torch."""

from automix.tracking._store import Tracker, check_tracking_uri, flatten, seed_sqlite_store
from automix.tracking._trial import TrialRun, read_trial_run

__all__ = ["Tracker", "TrialRun", "check_tracking_uri", "flatten", "read_trial_run", "seed_sqlite_store"]
