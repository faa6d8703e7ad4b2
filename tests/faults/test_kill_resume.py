"""kill -9 of the driver mid-search, twice, then --resume: nothing finished is lost or re-run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

pytestmark = pytest.mark.slow
N_TRIALS = 6


@pytest.fixture
def study_config(real_study):
    params = {
        "weight_decay": {"type": "float", "low": 0.01, "high": 3.0, "log": True},
        "epochs": {"type": "int", "low": 1, "high": 3},
        "mix_ratio": {"type": "float", "low": 0.0, "high": 0.5},
    }
    return real_study(
        "kill",
        params,
        data={"valid_tokens": 2048},
        budget={"unique_tokens": 30000},
        eval_every_tokens=15000,
        search={"n_trials": N_TRIALS, "scheduler": "none"},
    )


def _start(path, *flags):
    log = open(path.parent / "driver.log", "ab")  # noqa: SIM115 - the child owns it until it exits
    return subprocess.Popen(
        [sys.executable, "-m", "automix.cli", "search", str(path), *flags, "checkpoint_every_tokens=15000"],
        stdout=log,
        stderr=log,
        start_new_session=True,  # its own process group, so the test can clean Ray up afterwards
    )


def _study(work):
    return optuna.load_study(study_name="kill", storage=f"sqlite:///{work / 'optuna.db'}")


def _wait_for_complete(proc, work, n, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            log = (work.parent / "driver.log").read_text()[-2000:]
            raise AssertionError(f"the search exited early with code {proc.returncode}: {log}")
        try:
            if sum(t.state == TrialState.COMPLETE for t in _study(work).trials) >= n:
                return
        except Exception:  # noqa: BLE001 - the study may not exist yet
            pass
        time.sleep(0.5)
    raise TimeoutError(f"fewer than {n} trials completed in {timeout} s")


def test_kill_9_then_resume(study_config):
    path, work = study_config
    rng = random.Random(7)
    groups, snapshots = [], []
    for kill_after, flags in ((1, ()), (3, ("--resume",))):
        proc = _start(path, *flags)
        groups.append(proc.pid)
        _wait_for_complete(proc, work, kill_after)
        time.sleep(rng.uniform(0.0, 3.0))  # a random point: training, suggesting or logging
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as a crash would
        proc.wait()
        snapshots.append({t.number: t.value for t in _study(work).trials if t.state == TrialState.COMPLETE})
    final = _start(path, "--resume")
    groups.append(final.pid)
    try:
        assert final.wait(timeout=600) == 0
    finally:
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)  # orphaned Ray workers of the killed drivers
            except ProcessLookupError:
                pass

    trials = _study(work).trials
    trained = [
        t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and "rejected" not in t.user_attrs
    ]
    assert len(trained) == N_TRIALS  # the requested count is reached
    for snap in snapshots:  # everything finished before a kill is still there, with its value
        assert {n: trials[n].value for n in snap} == snap
    requeued = {t.user_attrs["requeued_from"]: t for t in trials if "requeued_from" in t.user_attrs}
    for number, successor in requeued.items():
        assert trials[number].state == TrialState.FAIL  # interrupted → failed and re-run
        assert successor.params == trials[number].params
    completed_before = set().union(*snapshots)
    assert not completed_before & set(requeued)  # no finished trial is trained again

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    exp = client.get_experiment_by_name("kill").experiment_id
    assert not client.search_runs([exp], "attributes.status = 'RUNNING'")
