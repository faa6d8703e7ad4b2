"""The driver's process and the local Ray cluster it starts: Ray's start-up, the runtime env its
workers get, SIGTERM handled like Ctrl-C, and a watchdog that ends Ray's processes when the driver
is killed. What each one guards against is in its docstring.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import site
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray

from automix.console import LOG_NAME, quiet_output
from automix.errors import ConfigError


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
    """Ray `runtime_env` for a cluster this driver starts on its own machine.

    Its workers import the objective the way the driver does: the driver's `sys.path` entries (a
    helper module's folder a script added, say) go to them as PYTHONPATH, and they stay in the
    driver's working directory (Tune would move each trial into its own folder, breaking relative paths).
    """
    paths = driver_paths()
    inherited = os.environ.get("PYTHONPATH", "")
    pythonpath = os.pathsep.join([*paths, *([inherited] if inherited else [])])
    env = {"RAY_CHDIR_TO_TRIAL_DIR": "0"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return {"env_vars": env}


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread.

    So the search's cleanup runs: Ray is shut down and the study and MLflow runs are closed.
    Python's default for SIGTERM is to die on the spot, leaving the raylet and its workers behind.
    """
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
    """Start the watchdog (once per driver process; Linux only).

    A driver killed with SIGKILL runs no cleanup at all. Most of Ray's processes follow their
    parent down, but its dashboard and runtime-env agents hang for minutes trying to report the
    raylet's death to a GCS that died with it; the watchdog kills the ones still there.
    """
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


def ray_init(work_dir: Path, address: str | None) -> bool:
    """Start (or join) Ray; returns whether this call started it.

    Without `address` (or Ray's own RAY_ADDRESS) a new local Ray starts: Ray's default would join
    the cluster that `ray start` recorded in /tmp/ray/ray_current_cluster, and wait forever if
    that one has died. Ray's start-up output goes to WORK/automix.log; a cluster started here gets
    the driver's sys.path and working directory for its workers (`local_runtime_env`), and a
    watchdog that ends its processes if the driver is killed (`watch_ray_processes`).
    """
    if ray.is_initialized():
        return False
    temp_dir = work_dir / "ray_tmp"
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    local = address is None and not os.environ.get("RAY_ADDRESS")
    if local:
        kwargs["runtime_env"] = local_runtime_env()
        # Ray's unix sockets live under its temp dir; their paths must stay under 107 bytes.
        if len(str(temp_dir)) <= 40:
            kwargs["_temp_dir"] = str(temp_dir)
    with quiet_output(work_dir / LOG_NAME):
        ray.init(address="local" if local else address, **kwargs)
    if local:
        watch_ray_processes()  # a driver killed with SIGKILL leaves no Ray process behind
    return True


def cluster_gpus() -> float:
    """The GPUs the Ray cluster offers: a driver that joined a cluster may see none on its own machine."""
    return float(ray.cluster_resources().get("GPU", 0.0))


def make_writable(work: Path) -> None:
    """Create the work directory and check that files can be written there (a ConfigError if not)."""
    try:
        work.mkdir(parents=True, exist_ok=True)
        probe = work / ".automix-write-test"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"cannot write work_dir {work} ({e.strerror}): choose a writable work_dir") from None
