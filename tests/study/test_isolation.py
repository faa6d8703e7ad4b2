"""Two studies never write into each other's files: the README's quickstart → API snippet → export."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import automix
from automix.cli import main
from automix.errors import ConfigError

pytestmark = pytest.mark.slow


def _snapshot(work: Path) -> dict[str, str]:
    return {
        str(p.relative_to(work)): hashlib.sha256(p.read_bytes()).hexdigest() for p in work.rglob("*") if p.is_file()
    }


def test_a_second_study_in_the_same_work_dir_is_refused_and_changes_nothing(real_study, tmp_path, capsys):
    params = {"weight_decay": {"type": "float", "low": 0.03, "high": 1.0, "log": True}, "epochs": 1}
    path, work = real_study("quickstart", params, search={"n_trials": 2, "scheduler": "none"})
    assert main(["search", str(path)]) == 0  # the quickstart
    best = json.loads((work / "best.json").read_text())
    assert json.loads((work / "study.json").read_text()) == {"study": "quickstart"}
    before = _snapshot(work)

    # The README's API snippet, as a user might first write it: another study, the same work_dir.
    config = automix.load_config(path, ["study=api_demo"])
    with pytest.raises(ConfigError, match=r"belongs to study 'quickstart'.*work_dir=runs/api_demo"):
        automix.search(config, n_trials=1)
    # Every command that opens the other study there is refused the same way, in one line, exit 2.
    for command in (["export", str(path), "study=api_demo"], ["train", str(path), "study=api_demo"]):
        capsys.readouterr()
        assert main(command + (["--out", str(tmp_path / "refused")] if command[0] == "export" else [])) == 2
        err = capsys.readouterr().err.strip()
        assert "belongs to study 'quickstart'" in err and len(err.splitlines()) == 1
    assert _snapshot(work) == before

    # As the README writes it: its own work_dir. The quickstart's files stay as they were.
    automix.search(automix.load_config(path, ["study=api_demo", f"work_dir={tmp_path / 'api_demo'}"]), n_trials=1)
    assert _snapshot(work) == before

    # `export` of the config or of the work dir (the README's form) is the quickstart's best trial.
    for i, source in enumerate((str(path), str(work))):
        out = tmp_path / f"hf{i}"
        assert main(["export", source, "--out", str(out)]) == 0
        exported = json.loads((out / "automix_config.json").read_text())
        assert exported["optim"]["weight_decay"] == pytest.approx(best["best_params"]["weight_decay"])
