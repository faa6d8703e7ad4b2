"""What a search prints: live progress, plain lines without a terminal, one format, a quiet console."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from rich.console import Console

from automix.console import (
    WIDTH,
    ProgressCallback,
    SearchProgress,
    _callback,
    fmt_duration,
    fmt_tokens,
    print_summary,
)
from automix.console._quiet import quiet_output
from automix.scheduling import FailFast, RepeatedFailure

PARAMS = {"weight_decay": 0.1234567, "learning_rate": 0.003, "epochs": 8, "mix_ratio": 0.25}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _trial(number: int, trial_id: str | None = None, error_file: Path | None = None, last: dict | None = None):
    config = {**PARAMS, "__automix_trial": number}
    return SimpleNamespace(
        trial_id=trial_id or f"t{number}", config=config, last_result=last or {}, error_file=error_file
    )


def test_number_formats_are_one_and_short():
    assert [fmt_tokens(n) for n in (950, 12_345, 412_000, 999_680, 1_200_000, 3.1e9)] == [
        "950",
        "12.3k",
        "412k",
        "1M",
        "1.2M",
        "3.1B",
    ]
    assert [fmt_tokens(v) for v in (None, float("nan"))] == ["?", "?"]
    assert [fmt_duration(s) for s in (5, 65, 3725)] == ["5s", "1m05s", "1h02m"]


def test_progress_tracks_running_trials_best_and_time_left():
    clock = Clock()
    p = SearchProgress("target_val_loss", total=6, concurrency=2, planned=lambda params: 1_000_000, clock=clock)
    p.start("a", 0, PARAMS)
    p.start("b", 1, PARAMS)
    assert p.eta_s() is None and "estimating" in p.status()  # nothing to estimate from yet
    clock.now += 30
    p.result("a", {"tokens": 250_000, "target_val_loss": 3.25, "progress": 0.25})
    line = p.trial_line(p.running["a"])
    assert "trial 0" in line and "250k/1M tokens" in line and "target_val_loss=3.25" in line and "30s" in line
    assert "wd=0.1235 lr=0.003 E=8 r=0.25" in line  # short names, 4 significant digits
    # a at 25% after 30 s: 90 s left; b, 4 waiting trials at 120 s each, over 2 slots
    assert p.eta_s() == pytest.approx((90 + 90 + 4 * 120) / 2)
    clock.now += 90
    p.end("a", "COMPLETE", 2.5)
    p.end("b", "PRUNED", 2.0)  # a pruned trial's value is not a best
    status = p.status()
    assert "search 2/6 done" in status and "best target_val_loss=2.5 (trial 0)" in status and "2m00s in" in status
    assert all(len(line) <= WIDTH for line in (status, line))


def test_time_left_counts_the_slots_a_lone_last_trial_leaves_idle():
    clock = Clock()
    p = SearchProgress("loss", total=3, concurrency=2, planned=lambda params: 1000, clock=clock)
    for trial_id, number in (("a", 0), ("b", 1)):
        p.start(trial_id, number, PARAMS)
    clock.now += 50
    p.result("b", {"tokens": 500, "progress": 0.5})
    clock.now += 50
    p.result("a", {"tokens": 1000, "progress": 1.0})
    p.end("a", "COMPLETE", 2.0)
    # 0.1 s a token: b's last 500 tokens took their 50 s since its report at 50 s, so it ends now;
    # the waiting trial then runs alone for 100 s, not (0 + 100) / 2 s on both slots.
    assert p.eta_s() == pytest.approx(100)


def test_time_left_weighs_trials_by_their_planned_tokens():
    clock = Clock()
    p = SearchProgress("loss", total=3, concurrency=1, planned=lambda params: params["T"], clock=clock)
    p.start("small", 0, {"T": 1000})
    clock.now += 12  # 2 s to start, 0.01 s a token
    p.result("small", {"tokens": 1000, "progress": 1.0})
    p.end("small", "COMPLETE", 1.0)
    p.start("big", 1, {"T": 10_000})
    clock.now += 52
    p.result("big", {"tokens": 5000, "progress": 0.5})
    # A pace of 2 s + 0.01 s a token (fitted on both trials): big has 50 s left, and the waiting
    # trial, of the mean planned size (5,500 tokens), takes 2 + 55 s.
    assert p.eta_s() == pytest.approx(50 + 57)


def test_time_left_expects_trials_to_be_stopped_as_often_as_they_were():
    clock = Clock()
    p = SearchProgress("loss", total=6, concurrency=2, planned=lambda params: 1000, clock=clock)
    p.start("long", 0, PARAMS)
    for i in range(1, 4):  # three trials stopped at 1/8 of their plan, 10 s each, in the other slot
        p.start(f"s{i}", i, PARAMS)
        clock.now += 10
        p.result(f"s{i}", {"tokens": 125, "progress": 0.125})
        p.end(f"s{i}", "PRUNED", 3.0)
    p.result("long", {"tokens": 625, "progress": 0.625})  # 30 s in: past every stop, it runs to its end
    # The pace through (125 tokens, 10 s) and (625, 30 s): 5 s to start, 0.04 s a token; long has
    # 375 tokens (15 s) left. A waiting trial runs to its end one time in four (1 of 4 decided),
    # else stops at 1/8: 5 + 0.04 · 1000 · (1/4 + 3/4 · 1/8) = 18.75 s. One waits in the free
    # slot, the other after long: 15 + 18.75 s. Counted as full trials, they would take 45 s each.
    assert p.eta_s() == pytest.approx(15 + 18.75)


def test_a_custom_objective_line_shows_its_params_and_no_token_column():
    out = io.StringIO()
    cb = ProgressCallback(["loss"], 1, stream=out)
    trial = SimpleNamespace(trial_id="t0", config={"x": 0.5, "learning_rate": 0.01, "__automix_trial": 0})
    trial.last_result = {"loss": 0.25}
    cb.setup()
    cb.on_trial_start(0, [], trial)
    assert "tokens" not in cb.progress.trial_line(cb.progress.running["t0"])
    cb.on_trial_complete(0, [], trial)
    cb.on_experiment_end([])
    lines = out.getvalue().splitlines()
    assert lines[1] == "params: lr=learning_rate"  # only the names this space has
    done = next(line for line in lines if line.startswith("[1/1] trial 0"))
    assert "?" not in done and "tokens" not in done and "loss=0.25" in done and "x=0.5 lr=0.01" in done


def test_plain_lines_without_a_terminal_and_a_heartbeat(monkeypatch, tmp_path):
    monkeypatch.setattr(_callback, "HEARTBEAT_S", 0.2)
    monkeypatch.chdir(tmp_path)  # traceback paths are shown relative to the working directory
    out = io.StringIO()
    cb = ProgressCallback(["target_val_loss"], 3, concurrency=2, stream=out, errors_dir=tmp_path / "errors")
    assert not cb.live_view  # a StringIO is no terminal
    cb.setup()
    cb.on_trial_start(0, [], _trial(0))
    time.sleep(0.7)  # nothing happens: the heartbeat still prints the search's status
    error = tmp_path / "error.txt"
    error.write_text("Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'helpers'\n")
    (tmp_path / "errors").mkdir()
    (tmp_path / "errors" / "trial-0001.txt").write_text(error.read_text())
    cb.on_trial_start(0, [], _trial(1))
    cb.on_trial_error(0, [], _trial(1, error_file=error))
    cb.on_trial_complete(0, [], _trial(0, last={"tokens": 999_680, "target_val_loss": 2.0, "progress": 1.0}))
    cb.on_experiment_end([])
    lines = out.getvalue().splitlines()
    assert lines[0] == "searching 3 trials, 2 at a time"
    assert lines[1] == "params: wd=weight_decay lr=learning_rate E=epochs r=mix_ratio"
    assert "trial 0 started" in lines[2] and "wd=0.1235" in lines[2]
    assert any(line.startswith("search 0/3 done, 1 running") for line in lines), lines
    fail = next(line for line in lines if "trial 1 FAIL" in line)
    assert fail.endswith("FAIL ModuleNotFoundError: No module named 'helpers' (see errors/trial-0001.txt)")
    done = next(line for line in lines if "trial 0 COMPLETE" in line)
    assert "target_val_loss=2 1M tokens" in done and "wd=0.1235" in done
    assert all(len(line) <= WIDTH for line in lines), [len(line) for line in lines]


def test_live_view_on_a_terminal_redraws_while_trials_run(monkeypatch):
    monkeypatch.setattr(_callback, "REFRESH_S", 0.1)
    out = io.StringIO()
    cb = ProgressCallback(["loss"], 2, stream=out, live=True)
    cb.console = Console(file=out, force_terminal=True, width=WIDTH)
    cb.setup()
    cb.on_trial_start(0, [], _trial(4))
    cb.on_trial_result(0, [], _trial(4), {"tokens": 5000, "loss": 1.5, "progress": 0.5})
    time.sleep(0.5)
    cb.close()
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert "search 0/2 done, 1 running" in screen
    assert "trial 4" in screen and "5k/10k tokens" in screen and "loss=1.5" in screen
    assert screen.count("search 0/2 done") >= 2  # redrawn, not printed once


def test_summary_table_uses_the_same_names_and_formats(capsys):
    trials = pd.DataFrame(
        {
            "number": [0, 1, 2],
            "state": ["COMPLETE", "PRUNED", "FAIL"],
            "value": [2.345678, 3.0, None],
            "params_weight_decay": [0.1, 1.0, 3.0],
            "params_mix_ratio": [0.25, 0.5, 0.75],
            "user_attrs_tokens": [999_680.0, 412_000.0, None],
            "user_attrs_wall_time_s": [65.0, 30.0, None],
            "user_attrs_rejected": [None, None, "train_tokens 3,000 > max 2,000"],
        }
    )
    print_summary(trials, {"best_trial": 0, "best_value": 2.345678, "best_params": {"weight_decay": 0.1}}, "loss")
    err = capsys.readouterr().err
    assert " wd " in err and " r " in err and "weight_decay " not in err.split("\n", 1)[1]
    assert "1M" in err and "412k" in err and "1m05s" in err and "9.997e+05" not in err
    assert "best trial 0: loss=2.346 wd=0.1" in err
    assert "REJECTED" in err and "FAIL" not in err  # a suggestion never trained is not a failed trial
    assert all(len(line) <= WIDTH for line in err.splitlines())


def test_quiet_output_sends_descriptor_output_to_the_log(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTOMIX_VERBOSE", raising=False)
    log = tmp_path / "automix.log"
    with quiet_output(log) as console_stream:
        os.write(2, b"raw noise on fd 2\n")
        print("python noise")
        console_stream.write("for the user\n")
        console_stream.flush()
    text = log.read_text()
    assert "raw noise on fd 2" in text and "python noise" in text and "for the user" not in text
    monkeypatch.setenv("AUTOMIX_VERBOSE", "1")
    with quiet_output(log):
        print("shown")
    assert "shown" not in log.read_text()


def _error_file(tmp_path: Path, name: str, last: str) -> Path:
    path = tmp_path / name
    path.write_text(f"Traceback (most recent call last):\n  File x\n{last}\n")
    return path


def test_fail_fast_trips_on_one_repeated_error_only(tmp_path):
    same = _error_file(tmp_path, "a.txt", "ModuleNotFoundError: No module named 'helpers'")
    other = _error_file(tmp_path, "b.txt", "ValueError: bad x")
    guard = FailFast(3, tmp_path / "errors")
    for n in range(2):
        guard.on_trial_error(0, [], _trial(n, error_file=same))
    assert not guard.stop_all()
    guard.on_trial_error(0, [], _trial(2, error_file=same))
    assert guard.stop_all() and isinstance(guard.error, RepeatedFailure)
    message = str(guard.error)
    assert "first 3 trials" in message and "No module named 'helpers'" in message and "\n" not in message
    assert "trial-0000.txt" in message and (tmp_path / "errors" / "trial-0002.txt").is_file()

    mixed = FailFast(3, tmp_path / "e2")
    for n, f in enumerate((same, other, same, same)):
        mixed.on_trial_error(0, [], _trial(n, error_file=f))
    assert not mixed.stop_all()  # different errors: the objective can fail in more than one way
    cleared = FailFast(2, tmp_path / "e3")
    cleared.on_trial_complete(0, [], _trial(0))
    for n in (1, 2, 3):
        cleared.on_trial_error(0, [], _trial(n, error_file=same))
    assert not cleared.stop_all()  # a trial ran to its end: the objective can run


HELPER_SEARCH = """
import sys
sys.path.insert(0, {helpers!r})  # the driver adds a folder: the workers must see it too
import automix

def objective(params, report):
    import shapes  # a helper module next to the script, not installed
    for step in (1, 2):
        report({{"tokens": step * 1000, "loss": shapes.bowl(params["x"]) + 1 / step, "progress": step / 2}})
    return {{"loss": shapes.bowl(params["x"])}}

def broken(params, report):
    import module_nobody_has

fn = objective if sys.argv[1] == "ok" else broken
try:
    r = automix.search_objective(fn, {{"x": {{"type": "float", "low": 0, "high": 1}}}}, study="s",
        work_dir=sys.argv[2], n_trials=int(sys.argv[3]), concurrency=2, scheduler="none", metric="loss")
    print("STATES", sorted(r.trials["state"]))
except automix.ConfigError as e:
    print("CONFIGERROR", type(e).__name__, e)
"""


@pytest.fixture
def helper_script(tmp_path):
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "shapes.py").write_text("def bowl(x):\n    return (x - 0.3) ** 2\n")
    script = tmp_path / "scripts" / "search.py"
    script.parent.mkdir()
    script.write_text(textwrap.dedent(HELPER_SEARCH.format(helpers=str(helpers))))
    return script


def _run(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("AUTOMIX_VERBOSE", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_workers_import_what_the_driver_can_and_ray_stays_off_the_console(helper_script, tmp_path):
    work = tmp_path / "w"
    done = _run(helper_script, "ok", str(work), "3", cwd=tmp_path)
    assert "STATES ['COMPLETE', 'COMPLETE', 'COMPLETE']" in done.stdout, done.stdout + done.stderr[-3000:]
    console = done.stdout + done.stderr
    for noise in ("Configuration for experiment", "TensorBoard", "Token authentication", "SearchGenerator"):
        assert noise not in console, console
    assert "[3/3] trial" in done.stderr and all(len(line) <= WIDTH for line in done.stderr.splitlines())
    log = (work / "automix.log").read_text()
    assert "Configuration for experiment" in log or "View detailed results" in log


@pytest.mark.slow
def test_a_search_whose_first_trials_all_fail_the_same_way_stops(helper_script, tmp_path):
    work = tmp_path / "w"
    done = _run(helper_script, "broken", str(work), "30", cwd=tmp_path)
    assert "CONFIGERROR RepeatedFailure the first 4 trials all failed with ModuleNotFoundError" in done.stdout, (
        done.stdout + done.stderr[-3000:]
    )
    import optuna

    study = optuna.load_study(study_name="s", storage=f"sqlite:///{work / 'optuna.db'}")
    assert len(study.trials) <= 6  # stopped after concurrency + 2 failures, not 30 trials
    assert len(list((work / "errors").glob("trial-*.txt"))) >= 4
