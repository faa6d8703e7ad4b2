"""MLflow tracking: the store of one study (an embedded sqlite file or a server). MLflow only: no Ray, no torch."""

from automix.tracking._store import Tracker, check_tracking_uri, flatten, seed_sqlite_store

__all__ = ["Tracker", "check_tracking_uri", "flatten", "seed_sqlite_store"]
