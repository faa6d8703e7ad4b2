"""`automix ui`: trials are rows of their own in MLflow's UI, checked in a real browser; TERM stops it all."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from automix.scheduling._callbacks import MlflowTrialCallback, TrialLogging
from automix.tracking._store import Tracker
from automix.trial._record import TrialRecord

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
COLUMNS = ("weight_decay", "learning_rate", "epochs", "mix_ratio", "target_val_loss", "state", "tokens")
COLUMNS += ("budget/train_tokens", "model/parameters")  # T and the model's size: to filter and plot by
TRIALS = [
    {"weight_decay": 0.1, "learning_rate": 0.003, "epochs": 4, "mix_ratio": 0.25},
    {"weight_decay": 1.0, "learning_rate": 0.01, "epochs": 8, "mix_ratio": 0.5},
    {"weight_decay": 3.0, "learning_rate": 0.001, "epochs": 2, "mix_ratio": 0.0},
]


def describe(params: dict, number: int, requeued_from: int | None) -> TrialRecord:
    """A trial's record as the trainer objective gives it, with sizes only (this store has no corpora)."""
    train_tokens = params["epochs"] * 100_000 / (1 - params["mix_ratio"])
    derived = {"budget/train_tokens": train_tokens, "model/parameters": 136_448.0}
    return TrialRecord({"optim": {"weight_decay": params["weight_decay"]}}, derived, [], "byte")


@pytest.fixture
def store(tmp_path) -> Path:
    """A work dir whose MLflow store holds one search (parent run) and its three trials, written by
    the same callback a search uses; the last trial is stopped early (PRUNED)."""
    work = tmp_path / "w"
    work.mkdir()
    tracker = Tracker.open(f"sqlite:///{work / 'mlflow.db'}", "uistudy", work / "mlartifacts")
    tracker.start_parent("search-uistudy", {"search.n_trials": 3}, {"study": "uistudy"})
    callback = MlflowTrialCallback(tracker, {"study": "uistudy"}, ["target_val_loss"], TrialLogging(describe))
    resources = SimpleNamespace(required_resources={"CPU": 1.0})
    for number, params in enumerate(TRIALS):
        config = {**params, "__automix_trial": number}
        trial = SimpleNamespace(trial_id=f"r{number}", config=config, last_result={}, placement_group_factory=resources)
        callback.on_trial_start(0, [], trial)
        for step in (1, 2):
            result = {"tokens": step * 500_000, "target_val_loss": 3.0 - number * 0.2 - step * 0.1 + 1e-9 / 3}
            callback.on_trial_result(0, [], trial, result)
        pruned = number == len(TRIALS) - 1
        trial.last_result = {**result, "progress": 0.5} if pruned else {**result, "progress": 1.0, "automix_final": 1.0}
        callback.on_trial_complete(0, [], trial)
    tracker.end(tracker.parent_run_id, "FINISHED")
    return work


def test_trials_are_runs_of_their_own_with_a_view_of_their_columns(store):
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name("uistudy")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("automix.role") == "search")
    trials = [r for r in runs if r.data.tags.get("automix.role") == "trial"]
    assert len(trials) == 3 and all(r.data.tags["automix.search_run_id"] == parent.info.run_id for r in trials)
    # Nested runs (mlflow.parentRunId) are folded under their parent in MLflow's runs table.
    assert not any("mlflow.parentRunId" in r.data.tags for r in runs)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(exp.tags["mlflow.sharedViewState.automix-trials"])
    shown = " ".join(view["selectedColumns"])
    assert all(f"`{c}`" in shown for c in COLUMNS) and view["searchFilter"] == "tags.`automix.role` = 'trial'"
    assert view["columnWidths"]["metrics.`target_val_loss`"] >= 150  # a loss's digits, not "3.0000000..."
    # A pruned trial's run is KILLED (the UI's red cross), a complete one's FINISHED (its green tick).
    status = {r.data.tags["state"]: r.info.status for r in trials}
    assert status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def chromium(url: str, *args: str, timeout: int = 120) -> str:
    """Run headless Chromium on `url` (the page's JavaScript has 20 s of virtual time); its stdout."""
    browser = next(b for b in map(shutil.which, BROWSERS) if b)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    flags += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *flags, f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args, url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return done.stdout


def _status_icons(dom: str) -> dict[str, str]:
    """Per run id (the grid's row-id), the drawing (SVG path) of the status icon in its Created column."""
    icons = {}
    parts = re.split(r'(<div[^>]*role="row"[^>]*>)', dom)
    for tag, body in zip(parts[1::2], parts[2::2], strict=True):
        run = re.search(r'row-id="([0-9a-f]{32})"', tag)
        cell = re.search(r'col-id="runDateAndNestInfo".*?<path[^>]* d="([^"]+)"', body, re.S)
        if run and cell:
            icons[run.group(1)] = cell.group(1)
    return icons


def _text(dom: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


@pytest.mark.slow
def test_ui_opens_on_the_trials_and_stops_with_term(store, tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    ui = subprocess.Popen(
        [sys.executable, "-m", "automix.cli", "ui", "--work-dir", str(store), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        url, seen = None, []
        deadline = time.monotonic() + 240
        while url is None and time.monotonic() < deadline and ui.poll() is None:
            line = ui.stdout.readline()
            seen.append(line)
            if line.startswith("MLflow UI ready: "):
                url = line.split(": ", 1)[1].strip()
        assert url, "".join(seen)
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/") and "viewStateShareKey=" in url
        assert "workflowType=machine_learning" in url
        server = _children(ui.pid)
        assert server, "the MLflow server runs as a child of automix ui"
        browser = any(shutil.which(b) for b in BROWSERS)
        if browser:
            _check_in_browser(url, store, port, tmp_path)
    finally:
        ui.send_signal(signal.SIGTERM)
        try:
            code = ui.wait(60)
        except subprocess.TimeoutExpired:
            ui.kill()
            raise
    assert code == 0
    # The console has automix's lines only; the server's start-up, access log and warnings are in the log.
    printed = "".join(seen) + ui.stdout.read()
    assert printed.splitlines()[0].startswith("MLflow UI starting on") and '"GET /' not in printed, printed
    assert '"GET /' in (store / "automix.log").read_text()
    deadline = time.monotonic() + 20
    while _group(server[0]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _group(server[0]), "TERM reaches every process of the MLflow server"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "nothing listens on the UI's port any more"
    if not browser:  # the URL and TERM were checked; the page itself was not
        pytest.skip("no Chromium to check the page in (apt-get install -y chromium)")


def _check_in_browser(url: str, store: Path, port: int, tmp_path: Path) -> None:
    """The landing page lists each trial as a row with its columns, a pruned one with another status
    icon than a complete one's, the losses in wide columns; the compare view shows two trials."""
    dom = chromium(url, "--window-size=2400,900", "--dump-dom")  # wide: the grid renders visible columns only
    text = _text(dom)
    names = re.findall(r"trial-000\d", text)
    assert sorted(set(names)) == ["trial-0000", "trial-0001", "trial-0002"], text[:3000]
    assert "search-uistudy" not in text  # the search's own run is not among the trials
    for column in COLUMNS:
        assert column in text, (column, text[:3000])
    assert "3 matching runs" in text
    width = re.search(r'col-id="metrics.`target_val_loss`"[^>]*style="[^"]*width: (\d+)px', dom)
    assert width and int(width.group(1)) >= 150, "the view's column widths are applied"

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name("uistudy").experiment_id
    state = {r.info.run_id: r.data.tags["state"] for r in client.search_runs([exp], "tags.`automix.role` = 'trial'")}
    icons = _status_icons(dom)
    assert icons.keys() == state.keys(), icons
    complete = {icons[r] for r, s in state.items() if s == "COMPLETE"}
    pruned = {icons[r] for r, s in state.items() if s == "PRUNED"}
    assert len(complete) == len(pruned) == 1 and complete != pruned, "a pruned trial looks unlike a complete one"

    shot = tmp_path / "ui_trials.png"
    chromium(url, "--window-size=2000,600", "--hide-scrollbars", f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000
    if os.environ.get("AUTOMIX_UI_SCREENSHOT"):
        shutil.copy(shot, os.environ["AUTOMIX_UI_SCREENSHOT"])

    runs = list(state)[:2]
    query = f"runs={urllib.parse.quote(json.dumps(runs))}&experiments={urllib.parse.quote(json.dumps([exp]))}"
    compare = _text(chromium(f"http://127.0.0.1:{port}/#/compare-runs?{query}", "--dump-dom"))
    assert "Comparing 2 Runs" in compare and "weight_decay" in compare and "mix_ratio" in compare, compare[:3000]


def test_ui_gives_an_older_store_the_trials_layout(tmp_path):
    from automix.tracking._ui import experiment_page

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("old", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(exp, run_name="search-old").info.run_id
    for n in range(2):
        run = client.create_run(exp, run_name=f"trial-{n:04d}", tags={"mlflow.parentRunId": parent}).info.run_id
        client.log_param(run, "weight_decay", 0.1 * (n + 1))
        client.log_metric(run, "target_val_loss", 3.0 - n, step=1000)
        client.log_metric(run, "tokens", 1000, step=1000)
    url = experiment_page(uri, "old", "http://127.0.0.1:5000")
    assert (
        url
        == f"http://127.0.0.1:5000/#/experiments/{exp}/runs?workflowType=machine_learning&viewStateShareKey=automix-trials"
    )
    runs = client.search_runs([exp], "tags.`automix.role` = 'trial'")
    assert len(runs) == 2 and all(r.data.tags["automix.search_run_id"] == parent for r in runs)
    assert not any("mlflow.parentRunId" in r.data.tags for r in client.search_runs([exp]))
    view = json.loads(client.get_experiment(exp).tags["mlflow.sharedViewState.automix-trials"])
    assert view["selectedColumns"][:2] == ["tags.`state`", "metrics.`target_val_loss`"]
    assert "params.`weight_decay`" in view["selectedColumns"]
    assert experiment_page(uri, "missing", "http://h:1") == "http://h:1/#/?workflowType=machine_learning"


def test_the_servers_output_goes_to_the_log_unless_verbose(tmp_path, capfd):
    from automix.tracking._ui import serve

    cmd = [sys.executable, "-c", "import sys; print('GET /ajax-api 200'); sys.stderr.write('DeprecationWarning\\n')"]
    log = tmp_path / "automix.log"
    log.write_text("earlier\n")
    assert serve(cmd, "http://127.0.0.1:9", lambda: "", log=log, open_browser=False) == 0
    assert log.read_text().splitlines() == ["earlier", "GET /ajax-api 200", "DeprecationWarning"]  # appended
    assert capfd.readouterr().out == ""
    assert serve(cmd, "http://127.0.0.1:9", lambda: "", open_browser=False) == 0  # --verbose: the console
    shown = capfd.readouterr()
    assert "GET /ajax-api 200" in shown.out and "DeprecationWarning" in shown.err
