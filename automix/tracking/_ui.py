"""`automix ui`: MLflow's UI on a study's store, opened on the page that lists its trials.

The page is the experiment's runs table in MLflow's classic-ML mode, with the trials' shared view
(`trials_view_url`): a row per trial, its params and metrics as columns. The server is a child
process in its own process group: TERM and INT to `automix ui` are forwarded to the whole group,
and on Linux the server is also told to stop if `automix ui` itself dies (kill -9). Its output
(start-up lines, one access-log line per request, warnings) is appended to WORK/automix.log.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import webbrowser
from collections.abc import Callable
from pathlib import Path

from automix.tracking._store import VIEW_KEY, Tracker, trials_view_url

STOP_GRACE_S = 15  # how long the server gets to stop after TERM before the group is killed


def experiment_page(uri: str, experiment: str | None, server: str) -> str:
    """The URL of `experiment`'s trials on `server` (its store at `uri`); for a store an older
    automix wrote, first its trials' tags and view (`Tracker.unnest_trials`, `set_trials_view`).
    The server's home page when there is no such experiment (nothing is created)."""
    tracker = Tracker.existing(uri, experiment)
    if tracker is None:
        return f"{server.rstrip('/')}/#/?workflowType=machine_learning"
    if f"mlflow.sharedViewState.{VIEW_KEY}" not in tracker.experiment_tags():
        tracker.unnest_trials()  # a store written before trials were runs of their own
        params, metrics = tracker.trial_keys()
        preferred = [m for m in ("target_val_loss", "target_acc", "aux_val_loss") if m in metrics]
        tracker.set_trials_view(params, preferred or [m for m in metrics if m != "tokens"][:3])
    return trials_view_url(server, tracker.experiment_id)


def _die_with_parent() -> None:
    """In the server process before exec: stop (TERM) when `automix ui` dies, even by kill -9."""
    os.setsid()
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _can_open_browser() -> bool:
    """A graphical browser can be opened: a terminal user on a desktop (not a headless box or CI)."""
    if os.environ.get("CI") or not sys.stdout.isatty():
        return False
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False  # webbrowser would fall back to a text browser inside this terminal
    return True


def serve(
    cmd: list[str], server: str, page: Callable[[], str], say=print, log: Path | None = None, open_browser: bool = True
) -> int:
    """Run the MLflow server `cmd` until it exits or TERM/INT arrives (forwarded to its process group);
    once `server` answers, print `page()` and open it in a browser where there is one.

    Args:
        cmd: the server's command line.
        server: its address, polled until it answers.
        page: the URL to print once it does.
        say: prints automix's own lines.
        log: where the server's output (start-up lines, access log, warnings) is appended; None: the console.
        open_browser: open the page on a desktop.

    Returns:
        The server's exit code.
    """
    with open(log, "a") if log else contextlib.nullcontext() as output:
        return _serve(cmd, server, page, say, output, open_browser)


def _serve(cmd: list[str], server: str, page: Callable[[], str], say, output, open_browser: bool) -> int:
    out = {"stdout": output, "stderr": subprocess.STDOUT} if output else {}
    proc = subprocess.Popen(cmd, preexec_fn=_die_with_parent, **out)  # noqa: PLW1509 - setsid + prctl only

    def forward(signum, _frame) -> None:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}

    def announce() -> None:
        while proc.poll() is None and not _answers(server):
            time.sleep(0.5)
        if proc.poll() is None:
            url = page()
            say(f"MLflow UI ready: {url}")
            if open_browser and _can_open_browser():
                webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """TERM the server's group, then KILL what is left of it after `STOP_GRACE_S`."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()  # reap the server itself
            if not group_alive(proc.pid):
                return
            time.sleep(0.2)


def group_alive(pgid: int) -> bool:
    """Whether a process group has a live member (zombies, which nothing may reap here, do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            return True
    return False
