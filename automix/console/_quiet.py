"""A quiet console: Ray's and MLflow's own output goes to a log file in the work directory.

`automix search --verbose` (or AUTOMIX_VERBOSE=1) keeps it on the console as well.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

VERBOSE_ENV = "AUTOMIX_VERBOSE"
LOG_NAME = "automix.log"  # in the work directory: Ray's and MLflow's own output


@contextlib.contextmanager
def quiet_output(log_path: Path) -> Iterator[IO[str]]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, and `sys.stdout/stderr`) to
    `log_path` while Ray and MLflow run, and yield a stream to the console for automix's own output.

    Ray prints its banners, Tune's experiment box, warnings and the workers' tracebacks on the
    driver's descriptors, some from C++; only a descriptor-level redirect catches them all. With
    `AUTOMIX_VERBOSE=1` nothing is redirected.
    """
    console_stream = sys.stderr
    if os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
        yield console_stream
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    own = None
    if _fileno(sys.stderr) == 2:  # the real stderr: keep a copy of the descriptor for the console
        own = os.fdopen(os.dup(2), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8")
        console_stream = own
    # automix's own warnings (a database or tracking server that stopped answering) stay on the
    # console as one line each, besides going to the log with everything else.
    notices = logging.StreamHandler(console_stream)
    notices.setLevel(logging.WARNING)
    notices.setFormatter(logging.Formatter("automix: %(message)s"))
    with open(log_path, "a", buffering=1, encoding="utf-8") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}\n")
        for fd in (1, 2):
            os.dup2(log.fileno(), fd)
        logging.getLogger("automix").addHandler(notices)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield console_stream
        finally:
            logging.getLogger("automix").removeHandler(notices)
            log.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            if own is not None:
                own.close()


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
