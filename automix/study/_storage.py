"""Open an Optuna storage from a URL, and ride out a database server that goes away for a while.

A URL is an SQLAlchemy URL (sqlite, PostgreSQL, MySQL) or a journal file (`journal:PATH`, or a
path ending in `.log`). A database storage retries calls that fail because the server is
unreachable, for up to `retry_s` seconds with a one-line notice, so a restarted PostgreSQL server
costs a search a pause, not its trials; past the bound the call raises `StorageUnavailable`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc
from optuna.exceptions import StorageInternalError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from automix.config._study import ConfigError

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
            return RetryingRDBStorage(url, engine_kwargs=_engine_kwargs(url), retry_s=retry_s)
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


def _unreachable(error: BaseException | None) -> bool:
    """Whether an error (or what caused it) says the database could not be reached.

    RDBStorage re-raises SQLAlchemy errors from a commit as `StorageInternalError`, hence the walk
    down the causes; integrity and data errors are not retried.
    """
    while error is not None:
        if isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
            return True
        error = error.__cause__
    return False


class RetryingRDBStorage(RDBStorage):
    """Optuna's `RDBStorage` whose public calls wait out an unreachable server for up to `retry_s` s.

    A subclass (not a wrapper) so Optuna still puts its trial cache in front of it, as it does for
    every RDBStorage. Only the outermost call of a thread retries: RDBStorage's methods call each other.
    """

    def __init__(self, url: str, engine_kwargs: dict[str, Any] | None = None, retry_s: float = DEFAULT_RETRY_S):
        super().__init__(url, engine_kwargs=engine_kwargs)
        self.retry_s = retry_s
        self._local = threading.local()

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_local", None)  # thread-local state does not pickle (Ray checkpoints the searcher)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._local = threading.local()

    def call_with_retry(self, name: str, call: Callable[[], Any]) -> Any:
        """Run one storage call; while the server is unreachable, retry until `retry_s` has passed."""
        if getattr(self._local, "busy", False):
            return call()
        self._local.busy = True
        try:
            return self._retry(name, call)
        finally:
            self._local.busy = False

    def _retry(self, name: str, call: Callable[[], Any]) -> Any:
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


def _retrying(name: str) -> Callable:
    method = getattr(RDBStorage, name)

    @functools.wraps(method)
    def call(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self.call_with_retry(name, lambda: method(self, *args, **kwargs))

    return call


# Every public call of Optuna's storage interface (BaseStorage), as RDBStorage implements it.
for _name in sorted(n for n, v in vars(BaseStorage).items() if callable(v) and not n.startswith("_")):
    if _name != "remove_session":
        setattr(RetryingRDBStorage, _name, _retrying(_name))
