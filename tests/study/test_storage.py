"""Where a study is kept: the `storage` key, `--storage`, a journal-file study end to end, and retries."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import sqlalchemy.event
import sqlalchemy.exc

from automix.cli import main
from automix.config import load_config
from automix.study import StorageUnavailable, Workspace, open_storage
from automix.study._storage import RetryingStorage

SPACE = {
    "weight_decay": {"type": "float", "low": 0.01, "high": 3.0, "log": True},
    "epochs": {"type": "int", "low": 1, "high": 2},
}


def test_storage_comes_from_the_config_and_the_flag_overrides_it(study_yaml):
    path = study_yaml(storage="journal:rel/study.log")
    ws = Workspace.from_config(load_config(path))
    assert ws.storage_url == f"journal:{Path('rel/study.log').resolve()}"  # relative to where automix runs
    assert ws.shares_storage
    flag = "postgresql+psycopg2://h/db"
    assert Workspace.from_config(load_config(path), flag).storage_url == flag
    default = Workspace.from_config(load_config(study_yaml(storage=None)))
    assert default.storage_url == f"sqlite:///{default.work_dir / 'optuna.db'}" and not default.shares_storage


def test_analyses_on_a_missing_study_say_so_and_create_nothing(study_yaml, tmp_path, capsys):
    log = tmp_path / "missing.log"
    path = study_yaml(storage=f"journal:{log}")
    for command in (["report", str(path)], ["export", str(path), "--out", str(tmp_path / "hf")]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no study at" in err, err
    assert not log.exists() and not (tmp_path / "work").exists()


@pytest.mark.slow
def test_a_journal_study_goes_through_search_and_report(real_study, tmp_path):
    log = tmp_path / "journal" / "study.log"
    log.parent.mkdir()
    path, work = real_study(
        "journal", SPACE, storage=f"journal:{log}", search={"n_trials": 2, "scheduler": "none", "sampler": "random"}
    )
    assert main(["search", str(path)]) == 0
    assert log.is_file() and not (work / "optuna.db").exists()
    study = optuna.load_study(study_name="journal", storage=open_storage(f"journal:{log}"))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert json.loads((work / "best.json").read_text())["storage"] == f"journal:{log}"
    assert main(["report", str(path), "--no-mlflow"]) == 0
    assert "journal" in (work / "report" / "report.md").read_text()


def _flaky(failures: int, error: Exception):
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "done"

    return call, calls


def test_a_database_call_waits_out_an_unreachable_server(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'retry.db'}", retry_s=5)
    assert isinstance(storage, RetryingStorage)
    down = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("could not connect to server"))
    call, calls = _flaky(2, down)
    assert storage.call_with_retry("get_all_trials", call) == "done" and len(calls) == 3


def test_past_the_bound_the_call_raises_one_line_and_other_errors_are_not_retried(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'retry.db'}", retry_s=0.6)
    down = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))
    call, _ = _flaky(100, down)
    with pytest.raises(StorageUnavailable, match="stayed unreachable .* --resume"):
        storage.call_with_retry("create_new_trial", call)
    integrity = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    call, calls = _flaky(1, integrity)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        storage.call_with_retry("create_new_trial", call)
    assert len(calls) == 1


def test_a_study_read_through_optunas_trial_cache_waits_out_an_outage(tmp_path):
    """The outage the cluster test met: the server goes away while Optuna's trial cache reads new
    trials inside `study.get_trials`; the call waits and then returns every trial."""
    storage = open_storage(f"sqlite:///{tmp_path / 'outage.db'}", retry_s=10)
    study = optuna.create_study(study_name="outage", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    # What psycopg2 and SQLAlchemy raise when PostgreSQL restarts: the connection dies, then the
    # session that used it refuses its next statement until rolled back.
    outage = [
        sqlalchemy.exc.OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly")),
        sqlalchemy.exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back"),
    ]

    def refuse(*_):
        if outage:
            raise outage.pop(0)

    fresh = optuna.load_study(study_name="outage", storage=storage)
    sqlalchemy.event.listen(storage.backend.engine, "before_cursor_execute", refuse)
    assert len(fresh.get_trials(deepcopy=False)) == 2 and not outage
