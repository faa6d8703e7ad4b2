"""`ProgressCallback`, the Ray Tune callback that prints a search: a live view on a terminal,
plain lines and a status line every `HEARTBEAT_S` without one (CI logs, a pipe), and a line per
finished trial. A failed trial's full traceback is kept in WORK/errors (`save_traceback`).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ray.tune import Callback
from rich.live import Live
from rich.text import Text

from automix.console._format import (
    WIDTH,
    console,
    fit,
    fmt_duration,
    fmt_params,
    fmt_tokens,
    fmt_value,
    legend,
    make_console,
)
from automix.console._progress import SearchProgress
from automix.protocol import TOKENS, TRIAL_KEY, error_reason, final_state, user_params

HEARTBEAT_S = 30.0  # without a terminal: a status line this often
REFRESH_S = 1.0  # on a terminal: how often the live view is redrawn


def traceback_path(errors_dir: Path, trial) -> Path:
    """Where a failed trial's full traceback is kept: WORK/errors/trial-NNNN.txt."""
    return errors_dir / f"trial-{int(trial.config.get(TRIAL_KEY, -1)):04d}.txt"


def save_traceback(errors_dir: Path, trial) -> Path | None:
    """Copy Ray's error file of a failed trial (under Ray's session folder) into the work directory."""
    source = getattr(trial, "error_file", None)
    if not source or not Path(source).is_file():
        return None
    target = traceback_path(errors_dir, trial)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    except OSError:
        return Path(source)
    return target


_LIVE_STATE = ("console", "_live", "_lock", "_stop", "_heartbeat")


class ProgressCallback(Callback):
    """Ray Tune callback: the live view (a terminal) or plain lines (no terminal), and a line per
    finished trial: `[done/total] trial N STATE metric=... tokens=... wall params`; a failed trial's
    line gives its cause and the file with its full traceback (`errors_dir`)."""

    def __init__(
        self,
        metrics: list[str],
        total: int,
        enabled: bool = True,
        *,
        concurrency: int = 1,
        minimize: bool = True,
        planned: Callable[[dict], float] | None = None,
        errors_dir: Path | None = None,
        stream: IO[str] | None = None,
        live: bool | None = None,
    ):
        self.metrics, self.enabled, self.minimize, self.errors_dir = metrics, enabled, minimize, errors_dir
        self.progress = SearchProgress(metrics[0], total, concurrency, planned)
        self.console = make_console(stream) if stream is not None else console
        self.live_view = self.console.is_terminal if live is None else live
        self._live: Live | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._legend = False  # the short names' legend is printed once, with the first trial

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks into the experiment state; a console stream, a lock or a
        # thread cannot be, and a restored copy draws nothing.
        state = {k: v for k, v in self.__dict__.items() if k not in _LIVE_STATE}
        return {**state, "enabled": False}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.console, self._live, self._heartbeat = console, None, None
        self._lock, self._stop = threading.Lock(), threading.Event()

    # Tune calls setup once before the first trial and on_experiment_end after the last.
    def setup(self, **info) -> None:
        """Say what the search will run, then start the live view or the heartbeat."""
        if not self.enabled:
            return
        self.say(f"searching {self.progress.total} trials, {self.progress.concurrency} at a time")
        if self.live_view:
            self._live = Live(
                get_renderable=self.progress.view,
                console=self.console,
                refresh_per_second=1 / REFRESH_S,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        else:
            self._heartbeat = threading.Thread(target=self._beat, name="automix-progress", daemon=True)
            self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.say(self.progress.status())

    def say(self, line: str) -> None:
        """Print one line above the live view (or as is without one)."""
        if not self.enabled:
            return
        with self._lock:
            self.console.print(Text(line), soft_wrap=True)

    def close(self) -> None:
        """Stop the live view and the heartbeat (also called by the search if Tune never ends cleanly)."""
        self._stop.set()
        if self._live is not None:
            self._live.stop()
            self._live = None

    def on_experiment_end(self, trials, **info):
        self.close()

    def on_trial_start(self, iteration, trials, trial, **info):
        number = int(trial.config.get(TRIAL_KEY, -1))
        params = user_params(trial.config)
        if not self._legend and (names := legend(list(params))):
            self._legend = True
            self.say(f"params: {names}")
        self.progress.start(trial.trial_id, number, params)
        if not self.live_view:
            planned = self.progress.running[trial.trial_id].planned
            tokens = f" {fmt_tokens(planned)} tokens" if planned else ""
            self.say(fit(f"trial {number} started{tokens} {fmt_params(user_params(trial.config))}"))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.progress.result(trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        self._line(trial, final_state(result, self.metrics)[0], result)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "FAIL", trial.last_result or {}, failed=True)

    def _line(self, trial, state: str, result: dict, failed: bool = False) -> None:
        value = result.get(self.metrics[0])
        running = self.progress.end(trial.trial_id, state, value, self.minimize)
        if not self.enabled:
            return
        p = self.progress
        number = trial.config.get(TRIAL_KEY)
        head = f"[{p.done}/{p.total}] trial {number} {state}"
        if failed:
            cause = error_reason(getattr(trial, "error_file", None)) or "unknown error"
            saved = traceback_path(self.errors_dir, trial) if self.errors_dir else None
            path = saved if saved is not None and saved.is_file() else getattr(trial, "error_file", None)
            tail = f" (see {_relative(path)})" if path else ""  # the full traceback
            # One line: the cause is cut (to no less than 60 columns) to make room for the path,
            # which is never cut: the line is wider than WIDTH only when the path is very long.
            self.say(fit(f"{head} {cause}", max(len(head) + 60, WIDTH - len(tail))) + tail)
            return
        wall = fmt_duration(p.clock() - running.started) if running else "?"
        tokens = f" {fmt_tokens(result[TOKENS])} tokens" if result.get(TOKENS) is not None else ""
        params = fmt_params(user_params(trial.config))
        self.say(fit(f"{head} {self.metrics[0]}={fmt_value(value)}{tokens} {wall} {params}"))


def _relative(path: str | Path) -> str:
    """A path relative to the working directory when it lies under it (shorter lines)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
