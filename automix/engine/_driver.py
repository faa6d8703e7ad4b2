"""What the search driver shares with the local Ray cluster it starts, and how it ends with it.

- `local_runtime_env`: Ray workers of a local cluster import the objective the way the driver
  does: the driver's `sys.path` entries (a helper module's folder a script added, say) go to them
  as PYTHONPATH, and they stay in the driver's working directory (Tune would move each trial into
  its own folder, breaking relative paths).
- `terminate_as_interrupt`: SIGTERM ends the search the way Ctrl-C does (a KeyboardInterrupt),
  so the search's cleanup runs: Ray is shut down and the study and MLflow runs are closed. Python's
  default for SIGTERM is to die on the spot, leaving the raylet and its workers behind.
- `watch_ray_processes`: a driver killed with SIGKILL runs no cleanup at all. Most of Ray's
  processes follow their parent down, but its dashboard and runtime-env agents hang for minutes
  trying to report the raylet's death to a GCS that died with it. A small watchdog process
  (Linux) remembers the driver's Ray descendants and kills the ones still there shortly after the
  driver is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import site
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterator
from pathlib import Path


def _installed_paths() -> set[Path]:
    """Folders every Python of this installation puts on sys.path by itself (stdlib, site-packages)."""
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    paths = {Path(p).resolve() for p in (sysconfig.get_path(n) for n in names) if p}
    with contextlib.suppress(AttributeError):
        paths |= {Path(p).resolve() for p in site.getsitepackages()}
    return paths


def driver_paths() -> list[str]:
    """The driver's own sys.path folders (not the interpreter's): what a worker would lack."""
    installed = _installed_paths()
    out = []
    for entry in sys.path:
        path = Path(entry or os.getcwd()).resolve()
        if path.is_dir() and path not in installed and not any(p in installed for p in path.parents):
            out.append(str(path))
    return list(dict.fromkeys(out))


def local_runtime_env() -> dict:
    """Ray `runtime_env` for a cluster this driver starts on its own machine (see the module doc)."""
    paths = driver_paths()
    inherited = os.environ.get("PYTHONPATH", "")
    pythonpath = os.pathsep.join([*paths, *([inherited] if inherited else [])])
    env = {"RAY_CHDIR_TO_TRIAL_DIR": "0"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return {"env_vars": env}


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread (see the module doc)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# The watchdog, run as `python -c WATCHDOG DRIVER_PID`: every POLL_S it notes the driver's
# descendants whose command line names Ray (pid and start time, so that a reused pid is never
# hit); once the driver is gone it gives Ray GRACE_S to stop by itself, then kills the rest.
WATCHDOG = r"""
import os, signal, sys, time
POLL_S, GRACE_S = 2.0, 10.0
driver = int(sys.argv[1])

def stat(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1]), fields[19]  # state, parent, start time
    except (OSError, IndexError, ValueError):
        return None

def is_ray(pid):
    try:
        return b"ray" in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False

seen = {}
while (s := stat(driver)) is not None and s[0] != "Z":
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := stat(int(name))) is not None:
            children.setdefault(st[1], []).append((int(name), st[2]))
    todo = [driver]
    while todo:
        for pid, started in children.get(todo.pop(), []):
            todo.append(pid)
            if pid not in seen and pid != os.getpid() and is_ray(pid):  # not this watchdog
                seen[pid] = started
    seen = {pid: t for pid, t in seen.items() if (st := stat(pid)) is not None and st[2] == t}
    time.sleep(POLL_S)
time.sleep(GRACE_S)
for pid, started in seen.items():
    st = stat(pid)
    if st is not None and st[2] == started and st[0] != "Z":
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""
_watchdog: subprocess.Popen | None = None


def watch_ray_processes() -> None:
    """Start the watchdog (once per driver process; Linux only): see the module doc."""
    global _watchdog
    if not Path("/proc/self/stat").exists() or (_watchdog is not None and _watchdog.poll() is None):
        return
    _watchdog = subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in the terminal, or the driver's group killed, spares it
        close_fds=True,
    )
