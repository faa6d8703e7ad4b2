"""Several trials reporting at once, and two drivers joining one study: nothing lost or duplicated."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from automix.cli import main
from automix.study._storage import open_storage

pytestmark = pytest.mark.slow
N_TRIALS = 10

DRIVER = textwrap.dedent(
    """
    import sys, time
    import automix
    from automix.config._space import parse_space

    def objective(params, report):
        for step in range(1, 4):
            time.sleep(0.05)
            report({"tokens": step * 10, "loss": params["x"] ** 2 + 1 / step})
        return {"loss": params["x"] ** 2}

    automix.search_objective(
        objective, parse_space({"x": {"type": "float", "low": -2, "high": 2}}),
        study="shared", work_dir=sys.argv[1], storage=sys.argv[2], join=True,
        sampler="random", seed=int(sys.argv[3]), n_trials=N_TRIALS, concurrency=2, metric="loss",
        scheduler="none", verbose=False,
    )
    """
).replace("N_TRIALS", str(N_TRIALS))


def test_two_drivers_join_one_journal_study(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    storage = f"journal:{tmp_path / 'study.log'}"
    procs = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path / f"d{i}"), storage, str(i)], cwd=tmp_path)
        for i in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]

    study = optuna.load_study(study_name="shared", storage=open_storage(storage))
    trained = [t for t in study.trials if t.state == TrialState.COMPLETE]
    # Each driver stops asking once the study is full; two asking at the same instant may add one.
    assert N_TRIALS <= len(trained) <= N_TRIALS + 1
    states = {t.number: (t.state.name, t.user_attrs) for t in study.trials if t.state != TrialState.COMPLETE}
    assert not states, states  # none lost, none left RUNNING
    assert len({t.number for t in study.trials}) == len(study.trials)
    runs = []
    for i in range(2):
        client = MlflowClient(f"sqlite:///{tmp_path / f'd{i}' / 'mlflow.db'}")
        exp = client.get_experiment_by_name("shared").experiment_id
        runs += [int(r.data.tags["optuna.trial_number"]) for r in client.search_runs([exp], "tags.state = 'COMPLETE'")]
    assert sorted(runs) == sorted(t.number for t in trained)  # each trial tracked once, by its driver


def test_joining_a_sqlite_study_is_refused(study_yaml, capsys):
    assert main(["search", str(study_yaml()), "--join"]) == 2
    assert "journal:" in capsys.readouterr().err


def _open_at_once(url, barrier, results):
    barrier.wait()
    try:
        open_storage(url)
        results.put("ok")
    except Exception as e:  # noqa: BLE001 - the message is what the test compares
        results.put(str(e))


def test_processes_opening_a_new_sqlite_study_at_once_all_succeed(tmp_path):
    # Optuna creates a new database's tables without a lock; a driver starting while another
    # process (`automix ui`, a script polling the study) opens the same new file must not fail.
    ctx = multiprocessing.get_context("fork")
    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'{round_}.db'}"
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_at_once, args=(url, barrier, results)) for _ in range(4)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join()
        assert outcomes == ["ok"] * 4
        assert optuna.get_all_study_names(open_storage(url)) == []  # a usable, empty storage
