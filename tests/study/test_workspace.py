"""Where a study lives: the one place trial folders are named, and a workspace Ray can ship to workers."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

from automix.config import parse_space
from automix.study import Workspace
from automix.trial import TrainerObjective


def test_trial_folders_are_named_by_the_workspace(tmp_path):
    ws = Workspace.of("s", tmp_path / "w")
    assert ws.trial_dir(7) == ws.trials_dir / "0007"
    assert ws.best_trial_dir() is None
    ws.work_dir.mkdir()
    (ws.work_dir / "best.json").write_text(json.dumps({"study": "s", "best_trial": 3}))
    assert ws.best_trial_dir() == ws.trial_dir(3)
    assert Workspace.at(ws.work_dir) == ws  # a work dir names its own study
    assert Workspace.at(tmp_path).tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_a_workspace_pickles_without_its_open_storage(tmp_path):
    ws = Workspace.of("s", tmp_path / "w")
    ws.work_dir.mkdir()
    assert ws.storage is not None  # opened (and cached) as a search does before Ray ships its objective
    back = pickle.loads(pickle.dumps(ws))
    assert back == ws and "storage" not in back.__dict__
    assert back.trial_dir(2) == ws.trial_dir(2)


def test_a_trial_objective_unpickles_in_a_worker_without_mlflow_or_the_driver(tmp_path, make_cfg):
    space = parse_space({"weight_decay": {"type": "float", "low": 0.01, "high": 1.0}})
    objective = TrainerObjective(make_cfg(), space, Workspace.of("s", tmp_path).trial_dir)
    path = tmp_path / "objective.pkl"
    path.write_bytes(pickle.dumps(objective))
    code = (
        "import pickle, sys\n"
        f"objective = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        "print(objective.config_for({'weight_decay': 0.5}, 4).out_dir)\n"
        "print(' '.join(m for m in ('mlflow', 'automix.driver', 'automix.scheduling') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True, text=True)
    lines = out.stdout.splitlines()
    assert lines[0] == str(Workspace.of("s", tmp_path).trial_dir(4))
    assert lines[1:] in ([], [""])
