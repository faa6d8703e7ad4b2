"""Scale-out: a real search on a two-node Ray cluster, the study in PostgreSQL, tracking on an MLflow server.

Once the worker node has finished a trial, it is killed while it trains the next; Ray retries that
trial on the head node (continuing its checkpoint in WORK/trials if one was saved), and the search
finishes with every trial recorded exactly once in both stores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from automix.cli import main
from automix.study._storage import open_storage

pytestmark = pytest.mark.cluster
N_TRIALS = 6
SPACE = {
    "weight_decay": {"type": "float", "low": 0.01, "high": 3.0, "log": True},
    "epochs": {"type": "int", "low": 3, "high": 6},
    "mix_ratio": {"type": "float", "low": 0.0, "high": 0.5},
}


def _wait_for_trial_on(node_id: str, storage, proc, log, timeout: float = 300) -> int:
    """The number of a trial RUNNING on `node_id` once another one finished there (the database says)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the search exited early with code {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            trials = optuna.load_study(study_name="scale", storage=storage).trials
        except KeyError:  # the driver has not created the study yet
            trials = []
        on_node = [t for t in trials if t.user_attrs.get("node_id") == node_id]
        running = [t.number for t in on_node if t.state == TrialState.RUNNING]
        if running and any(t.state == TrialState.COMPLETE for t in on_node):
            return running[0]
        time.sleep(0.2)
    raise TimeoutError(f"no trial ran on the worker node within {timeout} s: {log.read_text()[-3000:]}")


def test_search_survives_losing_a_worker_node(real_study, postgres_url, mlflow_server, ray_cluster):
    cluster, worker = ray_cluster
    head_id, worker_id = cluster.head_node.node_id, worker.node_id
    path, work = real_study(
        "scale",
        SPACE,
        checkpoint_every_tokens=10000,
        search={"n_trials": N_TRIALS, "sampler": "tpe", "scheduler": "none", "trial_retries": 1},
        tracking={"uri": mlflow_server},
    )
    log = path.parent / "driver.log"
    cmd = [sys.executable, "-m", "automix.cli", "search", str(path), "--address", cluster.address]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*cmd, "--storage", postgres_url], stdout=out, stderr=out, start_new_session=True)
    try:
        storage = open_storage(postgres_url)
        killed = _wait_for_trial_on(worker_id, storage, proc, log)
        cluster.remove_node(worker, allow_graceful=False)  # the node dies mid-trial
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    trials = optuna.load_study(study_name="scale", storage=storage).trials
    names = {head_id: "head", worker_id: "worker"}
    print(f"\nworker node killed while it ran trial {killed} (Ray retried it on the head node); after the search:")
    for t in trials:
        node = names.get(t.user_attrs.get("node_id"), t.user_attrs.get("node_id"))
        print(f"  trial {t.number}: {t.state.name:8} value={t.value} node={node} ({t.user_attrs.get('node_ip')})")
    assert [t.number for t in trials] == list(range(len(trials)))  # one row per trial, none duplicated
    assert [t.state for t in trials] == [TrialState.COMPLETE] * N_TRIALS  # none lost, none left RUNNING
    assert trials[killed].user_attrs["node_id"] == head_id  # retried on the surviving node
    assert {t.user_attrs["node_id"] for t in trials} == {head_id, worker_id}  # both nodes finished trials
    assert (work / "trials" / f"{killed:04d}").is_dir()

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("scale")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the server keeps the artifacts
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "automix.search_run_id" in r.data.tags]
    print(f"  database: {len(trials)} trials; MLflow server: {len(children)} trial runs of {len(runs)} runs")
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == [t.number for t in trials]
    status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}  # no run left RUNNING
    for run in children:
        trial = trials[int(run.data.tags["optuna.trial_number"])]
        assert run.data.tags["state"] == trial.state.name and run.info.status == status[trial.state.name]
        assert run.data.tags["ray.node_id"] == trial.user_attrs["node_id"]
        # Config, data and artifacts are on the server, where the UI is (the model of a COMPLETE trial).
        assert {d.dataset.name for d in run.inputs.dataset_inputs} >= {"target", "target_valid"}
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"curve.png", "result.json"} <= artifacts and ("model" in artifacts) == (trial.state.name == "COMPLETE")
    parent = next(r for r in runs if "automix.search_run_id" not in r.data.tags)
    assert parent.info.status == "FINISHED" and "best.json" in {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }
    _analyses_read_the_study_where_it_is_kept(path, work, postgres_url)


def _analyses_read_the_study_where_it_is_kept(path, work, storage: str) -> None:
    """`report`, `transfer` and `export` on the PostgreSQL study (no optuna.db in the work dir)."""
    assert not (work / "optuna.db").exists()
    assert main(["report", str(path), "--storage", storage]) == 0
    assert "scale" in (work / "report" / "report.md").read_text()
    assert main(["transfer", str(path), "--storage", storage, "--widths", "64"]) == 0
    assert json.loads((work / "transfer.json").read_text())["runs"][0]["width"] == 64
    assert main(["export", str(path), f"storage={storage}", "--out", str(work / "hf")]) == 0
    assert (work / "hf" / "config.json").is_file()


def test_search_rides_out_a_database_restart(real_study, postgres):
    """PostgreSQL stops for ~10 s mid-search and comes back: no trial lost, none left RUNNING. Then it
    stays away past `storage_retry_s`: the driver ends with one line and exit 2, and `--resume` finishes."""
    short = {**SPACE, "epochs": {"type": "int", "low": 1, "high": 3}}
    path, _ = real_study(
        "restart", short, storage=postgres.url, storage_retry_s=30, search={"n_trials": 3, "scheduler": "none"}
    )
    cmd = [sys.executable, "-m", "automix.cli", "search", str(path)]
    log = path.parent / "driver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
    try:
        _wait_for_states(postgres.url, "restart", {TrialState.COMPLETE: 1}, proc, log)
        postgres.stop()
        time.sleep(10)
        postgres.start()
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Optuna storage unreachable" in log.read_text()
    trials = optuna.load_study(study_name="restart", storage=open_storage(postgres.url)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3

    more = [*cmd, "--resume", "search.n_trials=5", "storage_retry_s=3"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(more, stdout=out, stderr=out, start_new_session=True)
    try:
        _wait_for_states(postgres.url, "restart", {TrialState.RUNNING: 1}, proc, log)
        postgres.stop()
        assert proc.wait(timeout=120) == 2, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    errors = [line for line in log.read_text().splitlines() if line.startswith("automix: error:")]
    assert len(errors) == 1 and "stayed unreachable" in errors[0] and "--resume" in errors[0], errors
    postgres.start()
    assert main(["search", str(path), "--resume", "search.n_trials=5"]) == 0
    trials = optuna.load_study(study_name="restart", storage=open_storage(postgres.url)).trials
    assert TrialState.RUNNING not in {t.state for t in trials}
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 5


def _wait_for_states(url: str, study: str, want: dict, proc, log, timeout: float = 180) -> None:
    """Wait until the study has at least `want[state]` trials in each state (the database says)."""
    storage = open_storage(url)  # one connection pool: a storage per poll leaks connections past PostgreSQL's 100
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the search exited early with code {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            trials = optuna.load_study(study_name=study, storage=storage).trials
        except KeyError:
            trials = []
        if all(sum(t.state == s for t in trials) >= n for s, n in want.items()):
            return
        time.sleep(0.3)
    raise TimeoutError(f"study {study} never reached {want}: {log.read_text()[-3000:]}")


def test_ui_points_at_the_tracking_server(mlflow_server, capsys):
    assert main(["ui", "--tracking-uri", mlflow_server]) == 0  # served there: nothing to start
    assert mlflow_server in capsys.readouterr().out
    assert main(["ui", "--tracking-uri", "http://127.0.0.1:9"]) == 2  # nothing listens there
    assert "does not answer" in capsys.readouterr().err
