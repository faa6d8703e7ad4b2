"""Open an Optuna storage from a URL, and ride out a database server that goes away for a while.

A URL is an SQLAlchemy URL (sqlite, PostgreSQL, MySQL) or a journal file (`journal:PATH`, or a
path ending in `.log`). A database storage retries calls that fail because the server is
unreachable, for up to `retry_s` seconds with a one-line notice, so a restarted PostgreSQL server
costs a search a pause, not its trials; past the bound the call raises `StorageUnavailable`.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc
from optuna.exceptions import StorageInternalError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, get_storage
from optuna.storages.journal import JournalFileBackend

from automix.errors import ConfigError

log = logging.getLogger(__name__)
DEFAULT_RETRY_S = 60.0


class StorageUnavailable(ConfigError):
    """The study's database stayed unreachable past the retry bound."""


def is_journal(url: str) -> bool:
    """Whether `url` names a journal file rather than a database."""
    return url.startswith("journal:") or url.endswith(".log")


def open_storage(url: str, retry_s: float = DEFAULT_RETRY_S, attempts: int = 5) -> BaseStorage:
    """The storage at `url`; a ConfigError in one line if it cannot be opened (server down, bad URL)."""
    for attempt in range(attempts):
        try:
            if is_journal(url):
                return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
            return RetryingStorage(RDBStorage(url, engine_kwargs=_engine_kwargs(url)), retry_s=retry_s)
        except Exception as e:  # noqa: BLE001 - SQLAlchemy, driver and OS errors all mean "can't open it"
            error = e
            if not _lost_creation_race(e):
                break
            time.sleep(0.1 * (attempt + 1))
    reason = str(error).splitlines()[0][:200]
    raise ConfigError(f"cannot open the Optuna storage {url} ({reason}): check the URL and the server") from None


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # sqlite under parallel writers: wait for the lock instead of failing with "database is locked".
        return {"connect_args": {"timeout": 60}}
    # A server restart leaves dead connections in the pool: test each one before it is used.
    return {"pool_pre_ping": True}


def _lost_creation_race(error: Exception) -> bool:
    """Optuna creates a new database's tables without a lock, so a second process opening it at the
    same moment (a driver, `automix ui`, a script polling the study) fails with a table that "already
    exists" or a duplicate schema version row; the schema is there on the next try."""
    return isinstance(error, sqlalchemy.exc.IntegrityError) or (
        isinstance(error, sqlalchemy.exc.DBAPIError) and "already exists" in str(error)
    )


_LOST_CONNECTION = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.PendingRollbackError,
)


def _unreachable(error: BaseException | None) -> bool:
    """Whether an error (or what caused it) says the database could not be reached.

    RDBStorage re-raises SQLAlchemy errors from a commit as `StorageInternalError`, hence the walk
    down the causes; integrity and data errors are not retried. `PendingRollbackError` is what a
    session whose connection died mid-transaction raises on its next statement; RDBStorage rolls the
    session back on any error, so the next attempt starts clean.
    """
    while error is not None:
        if isinstance(error, _LOST_CONNECTION):
            return True
        if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
            return True
        error = error.__cause__
    return False


class RetryingStorage(BaseStorage):
    """An Optuna storage whose every call waits out an unreachable database for up to `retry_s` s.

    It wraps what Optuna itself would use for the URL (`optuna.storages.get_storage`: RDBStorage
    behind Optuna's trial cache) and retries at the public `BaseStorage` interface, so the calls the
    cache makes inside (reading new trials) are covered too. The delegating methods are made below
    from BaseStorage's own list, so a method added by a later Optuna version is not missed.
    """

    def __init__(self, backend: RDBStorage, retry_s: float = DEFAULT_RETRY_S):
        self.backend = backend
        self.url = backend.url
        self.retry_s = retry_s
        self._storage = get_storage(backend)

    def call_with_retry(self, name: str, call: Callable[[], Any]) -> Any:
        """Run one storage call; while the server is unreachable, retry until `retry_s` has passed."""
        start, delay, warned = time.monotonic(), 0.5, False
        while True:
            try:
                result = call()
            except (sqlalchemy.exc.SQLAlchemyError, StorageInternalError) as e:
                waited = time.monotonic() - start
                if not _unreachable(e):
                    raise
                if waited >= self.retry_s:
                    raise StorageUnavailable(
                        f"the Optuna storage {self.url} stayed unreachable for {waited:.0f} s ({name}): "
                        "start the database again, then continue with `automix search CONFIG --resume`"
                    ) from None
                if not warned:
                    log.warning("Optuna storage unreachable (%s): retrying for up to %.0f s", name, self.retry_s)
                    warned = True
                time.sleep(delay)
                delay = min(5.0, delay * 2)
                continue
            if warned:
                log.warning("Optuna storage reachable again after %.1f s", time.monotonic() - start)
            return result


def _delegate(name: str) -> Callable:
    def call(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self._storage, name)
        return self.call_with_retry(name, lambda: method(*args, **kwargs))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(BaseStorage, name).__doc__
    return call


# Every public call of Optuna's storage interface. Set before the class is used, and the abstract
# set recomputed, because ABCMeta fixes a class's abstract methods when the class statement runs.
for _name in sorted(n for n, v in vars(BaseStorage).items() if callable(v) and not n.startswith("_")):
    setattr(RetryingStorage, _name, _delegate(_name))
abc.update_abstractmethods(RetryingStorage)
