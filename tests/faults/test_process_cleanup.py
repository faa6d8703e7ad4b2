"""A search killed with TERM, or with SIGKILL, leaves none of its local Ray processes running."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SLOW_SEARCH = """
import sys, time
import automix

def objective(params, report):
    for step in range(1, 300):
        time.sleep(1)
        report({"tokens": step * 100, "loss": params["x"] + 1 / step, "progress": step / 300})
    return {"loss": params["x"]}

automix.search_objective(objective, {"x": {"type": "float", "low": 0, "high": 1}}, study="slow",
    work_dir=sys.argv[1], n_trials=4, concurrency=2, scheduler="none", metric="loss")
"""


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        if (st := _stat(int(entry.name))) is not None:
            children.setdefault(st[1], []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pids: list[int]) -> list[int]:
    return [p for p in pids if (st := _stat(p)) is not None and st[0] != "Z"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
@pytest.mark.parametrize(("sig", "within_s"), [(signal.SIGTERM, 15), (signal.SIGKILL, 60)], ids=["term", "kill-9"])
def test_killed_search_leaves_no_ray_process(sig, within_s, tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(SLOW_SEARCH))
    driver = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "w")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        for line in driver.stdout:  # plain progress lines: no terminal here
            if "trial 1 started" in line:
                break
        time.sleep(5)  # both trials training in Ray workers
        ray = [p for p in _descendants(driver.pid) if b"ray" in _cmdline(p)]
        assert len(ray) >= 4, "raylet, GCS and two trial workers at least"
        driver.send_signal(sig)
        driver.wait(60)
    finally:
        if driver.poll() is None:
            driver.kill()
    deadline = time.monotonic() + within_s
    while _alive(ray) and time.monotonic() < deadline:
        time.sleep(1)
    left = {p: _cmdline(p)[:60] for p in _alive(ray)}
    assert not left, f"still running {within_s} s after the driver got signal {sig}: {left}"
