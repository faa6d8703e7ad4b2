"""Open an Optuna storage from a URL: a database (SQLAlchemy URL) or a journal file."""

from __future__ import annotations

import time

import sqlalchemy.exc
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from automix.config._study import ConfigError


def open_storage(url: str, attempts: int = 5) -> BaseStorage:
    """An SQLAlchemy URL (sqlite, PostgreSQL, ...) or a journal file path (`*.log`, `journal:PATH`)."""
    for attempt in range(attempts):
        try:
            if url.startswith("journal:") or url.endswith(".log"):
                return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
            # sqlite under parallel writers: wait for the lock instead of failing with "database is locked".
            engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
            return RDBStorage(url, engine_kwargs=engine_kwargs)
        except Exception as e:  # noqa: BLE001 - SQLAlchemy, driver and OS errors all mean "can't open it"
            error = e
            if not _lost_creation_race(e):
                break
            time.sleep(0.1 * (attempt + 1))
    reason = str(error).splitlines()[0][:200]
    raise ConfigError(f"cannot open the Optuna storage {url} ({reason}): check the URL and the server") from None


def _lost_creation_race(error: Exception) -> bool:
    """Optuna creates a new database's tables without a lock, so a second process opening it at the
    same moment (a driver, `automix ui`, a script polling the study) fails with a table that "already
    exists" or a duplicate schema version row; the schema is there on the next try."""
    return isinstance(error, sqlalchemy.exc.IntegrityError) or (
        isinstance(error, sqlalchemy.exc.DBAPIError) and "already exists" in str(error)
    )


