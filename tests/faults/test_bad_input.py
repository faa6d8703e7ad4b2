"""Bad input: each case ends with one line naming the problem and the fix, exit 2, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from automix.cli import main


def _corpus(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# (case id, config sections to merge, command-line overrides, words the message must contain)
CASES = [
    ("unknown-top-key", {"serach": {}}, [], ["unknown key", "serach"]),
    ("unknown-nested-key", {"optim": {"learnin_rate": 1e-3}}, [], ["optim.learnin_rate"]),
    ("wrong-type", {"model": {"width": "wide"}}, [], ["model.width", "wide"]),
    ("lr-zero", {}, ["optim.learning_rate=0"], ["optim.learning_rate", "greater than 0"]),
    ("lr-negative", {}, ["optim.learning_rate=-1e-3"], ["optim.learning_rate"]),
    ("wd-negative", {}, ["optim.weight_decay=-0.1"], ["optim.weight_decay"]),
    ("mix-ratio-one", {}, ["budget.mix_ratio=1.0"], ["budget.mix_ratio", "less than 1"]),
    ("epochs-below-one", {}, ["budget.epochs=0.5"], ["budget", "below 1"]),
    ("heads-not-dividing", {}, ["model.n_heads=5"], ["not divisible", "n_heads"]),
    ("unknown-sampler", {}, ["search.sampler=bayes"], ["search.sampler", "bayes"]),
    ("metric-mode-shapes", {}, ["search.metric=[a, b]"], ["metric and mode"]),
    ("bad-override", {}, ["search.n_trials"], ["key=value"]),
    ("fixed-without-T", {}, ["budget.mode=fixed_tokens"], ["train_tokens"]),
    ("missing-corpus", {"data": {"target": "/nonexistent/ar"}}, [], ["/nonexistent/ar"]),
    ("empty-corpus", {"data": {"target": "EMPTY"}}, [], ["empty"]),
    ("non-utf8-corpus", {"data": {"target": "LATIN1"}}, [], ["UTF-8"]),
    ("corpus-smaller-than-U", {"budget": {"unique_tokens": 10**7}}, [], ["unique_tokens", "10,000,001"]),
    ("aux-too-small", {}, [], ["auxiliary", "0.75"]),
    ("mix-without-aux", {"data": {"auxiliary": None, "aux_valid": None}}, [], ["auxiliary"]),
    ("space-missing", {"search": {"space": "/nonexistent/space.yaml"}}, [], ["/nonexistent/space.yaml", "not found"]),
    ("space-unknown-param", {"search": {"space": "BADSPACE"}}, [], ["learnin_rate"]),
    ("cap-below-smallest-trial", {}, ["search.max_train_tokens=100"], ["max_train_tokens", "raise it"]),
    ("grid-too-many-trials", {}, ["search.sampler=grid", "search.n_trials=100000"], ["grid has", "n_trials"]),
    ("unreachable-tracking", {}, ["tracking.uri=http://127.0.0.1:9"], ["127.0.0.1:9", "does not answer"]),
    ("bad-storage-url", {}, ["--storage", "nosuchdb://x"], ["Optuna storage", "nosuchdb"]),
    # A key in the wrong section, from the command line: where it lives, and where it came from.
    ("key-outside-its-section", {}, ["n_trials=3"], ["unknown key 'n_trials'", "'search.n_trials'", "command line"]),
    ("misspelt-section", {"serach": {"n_trials": 3}}, [], ["did you mean 'search'", "study.yaml"]),
    ("misspelt-nested-key", {}, ["search.n_trails=3"], ["'search.n_trials'", "override search.n_trails=3"]),
    # Space files: every key is read, every bound checked against the trainer, one line naming the file.
    ("space-mix-ratio-over-one", {"search": {"space": "SPACE:mix_high"}}, [], ["space.yaml", "mix_ratio high=1.5"]),
    ("space-epochs-below-one", {"search": {"space": "SPACE:epochs_zero"}}, [], ["space.yaml", "epochs low=0"]),
    ("space-epochs-half", {"search": {"space": "SPACE:epochs_half"}}, [], ["epochs low=0.5", "below 1"]),
    ("space-misplaced-key", {"search": {"space": "SPACE:misplaced"}}, [], ["space.yaml", "top-level key 'epochs'"]),
    ("space-misspelt-params", {"search": {"space": "SPACE:parms"}}, [], ["did you mean 'params'"]),
    ("space-unknown-spec-key", {"search": {"space": "SPACE:hihg"}}, [], ["'hihg'", "did you mean 'high'"]),
    ("space-misspelt-param", {"search": {"space": "SPACE:wieght"}}, [], ["'wieght_decay'", "'weight_decay'"]),
    ("space-bad-type", {"search": {"space": "SPACE:integer"}}, [], ["type 'integer'", "space.yaml"]),
]

# Space files of the SPACE:name cases (each otherwise valid for the tiny corpora).
SPACES = {
    "mix_high": "params:\n  mix_ratio: {type: float, low: 0.0, high: 1.5}\n",
    "epochs_zero": "params:\n  epochs: {type: int, low: 0, high: 2}\n",
    "epochs_half": "params:\n  epochs: {type: float, low: 0.5, high: 2}\n",
    "misplaced": "params:\n  mix_ratio: {type: float, low: 0.0, high: 0.25}\nepochs: {type: int, low: 1, high: 2}\n",
    "parms": "parms:\n  epochs: {type: int, low: 1, high: 2}\n",
    "hihg": "params:\n  epochs: {type: int, low: 1, hihg: 2}\n",
    "wieght": "params:\n  wieght_decay: {type: float, low: 0.01, high: 1.0}\n",
    "integer": "params:\n  epochs: {type: integer, low: 1, high: 2}\n",
}


@pytest.mark.parametrize(("case", "sections", "overrides", "needles"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, sections, overrides, needles, study_yaml, capsys, tmp_path):
    data = sections.get("data", {})
    for key, value in list(data.items()):
        if value == "EMPTY":
            data[key] = _corpus(tmp_path, "empty.txt", b"\n\n")
        elif value == "LATIN1":
            data[key] = _corpus(tmp_path, "latin1.txt", "caf\xe9 au lait\n".encode("latin-1") * 500)
    if sections.get("search", {}).get("space") == "BADSPACE":
        space = tmp_path / "bad_space.yaml"
        space.write_text("params:\n  optim.learnin_rate: {type: float, low: 0.001, high: 0.01}\n")
        sections["search"]["space"] = str(space)
    space = sections.get("search", {}).get("space", "")
    if space.startswith("SPACE:"):
        path = tmp_path / "space.yaml"
        path.write_text(SPACES[space.removeprefix("SPACE:")])
        sections["search"]["space"] = str(path)
    if case == "mix-without-aux":
        sections["search"] = {"space": _mix_space(tmp_path)}
    if case not in ("aux-too-small", "mix-without-aux", "space-unknown-param", "space-missing") and not space:
        sections.setdefault("search", {}).setdefault("space", _small_space(tmp_path))
    path = study_yaml(**sections)
    assert main(["search", str(path), *overrides]) == 2, case
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("automix: error: ")
    for needle in needles:
        assert needle in err, err
    assert not (tmp_path / "work").exists(), "a failed start must leave no work directory"


def _small_space(tmp_path: Path) -> str:
    """A space the tiny corpora can afford, so only the case's own fault trips."""
    space = tmp_path / "small_space.yaml"
    space.write_text(
        "params:\n"
        "  weight_decay: {type: float, low: 0.01, high: 1.0, log: true, grid: [0.1, 1.0]}\n"
        "  epochs: {type: int, low: 1, high: 2, grid: [1, 2]}\n"
        "  mix_ratio: {type: float, low: 0.0, high: 0.25, grid: [0.0, 0.25]}\n"
    )
    return str(space)


def _mix_space(tmp_path: Path) -> str:
    space = tmp_path / "mix_space.yaml"
    space.write_text("params:\n  mix_ratio: {type: float, low: 0.0, high: 0.5}\n")
    return str(space)


def test_existing_study_is_refused_without_resume_and_left_intact(study_yaml, capsys, tmp_path):
    import optuna

    path = study_yaml(search={"space": _small_space(tmp_path)})
    work = tmp_path / "work"
    work.mkdir()
    storage = f"sqlite:///{work / 'optuna.db'}"
    study = optuna.create_study(study_name="t", storage=storage)
    study.enqueue_trial({"weight_decay": 0.1, "epochs": 1, "mix_ratio": 0.0})
    before = sorted(os.listdir(work))
    assert main(["search", str(path)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert sorted(os.listdir(work)) == before  # no mlflow.db, no best.json


def test_resume_with_another_space_is_refused(study_yaml, capsys, tmp_path):
    import optuna

    path = study_yaml(search={"space": _small_space(tmp_path)})
    work = tmp_path / "work"
    work.mkdir()
    study = optuna.create_study(study_name="t", storage=f"sqlite:///{work / 'optuna.db'}")
    trial = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2)})
    study.tell(trial, 1.0)
    assert main(["search", str(path), "--resume"]) == 2
    assert "another space" in capsys.readouterr().err


def test_unwritable_work_dir(study_yaml, capsys, tmp_path):
    if os.geteuid() == 0:
        parent = tmp_path / "file-not-dir"
        parent.write_text("x")  # root may write anywhere: a path under a file is unwritable for all
        work = parent / "work"
    else:
        parent = tmp_path / "ro"
        parent.mkdir(mode=0o500)
        work = parent / "work"
    path = study_yaml(work_dir=str(work), search={"space": _small_space(tmp_path)})
    assert main(["search", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot write work_dir" in err and len(err.strip().splitlines()) == 1
