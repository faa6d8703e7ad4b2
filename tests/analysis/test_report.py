"""`automix report` on a small real study (Ray + Optuna + MLflow), with compare and multiplier results."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

import automix
from automix.analysis._report import pareto_mask
from automix.cli import main
from automix.study import Workspace

pytestmark = pytest.mark.slow
SECTIONS = [
    "Summary",
    "Optimisation history",
    "Parallel coordinates",
    "Contour: mix_ratio × weight_decay",
    "Lever importance",
    "Pareto front: target loss vs accuracy",
    "Mix vs tune",
    "Effective-data multiplier",
    "Transfer",
]


def objective(params: dict, report) -> dict:
    """A known surface: weight decay matters most, mixing a little, and accuracy tracks loss."""
    loss = 1.5 + 0.3 * math.log10(params["weight_decay"]) ** 2 + 0.2 * (params["mix_ratio"] - 0.25) ** 2
    for step in (1, 2):
        report({"tokens": step * 1000, "target_val_loss": loss + 0.1 / step})
    return {"target_val_loss": loss, "target_acc": 0.6 - 0.2 * loss, "target_acc_chance": 0.25}


@pytest.fixture
def study_config(tiny, tmp_path):
    """A study config on the tiny corpora (so re-training is cheap), its study searched by `objective`."""
    space = tmp_path / "space.yaml"
    params = {
        "weight_decay": {"type": "float", "low": 0.01, "high": 10.0, "log": True},
        "mix_ratio": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25},
        "epochs": {"type": "int", "low": 1, "high": 2},
    }
    space.write_text(yaml.safe_dump({"params": params}))
    mc = tmp_path / "mc.jsonl"
    rows = [{"id": str(i), "context": f"T{i:03d}", "choices": ["السلام", "fox"], "label": i % 2} for i in range(6)]
    mc.write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = {
        "study": "rep",
        "work_dir": str(tmp_path / "w"),
        "data": {
            "target": str(tiny.target),
            "target_valid": str(tiny.target_valid),
            "auxiliary": str(tiny.auxiliary),
            "seq_len": 16,
            "cache_dir": str(tiny.cache),
            "eval_sets": {"mc": str(mc)},
        },
        "model": {"width": 32, "base_width": 32, "depth": 1, "n_heads": 2},
        "optim": {"batch_size": 4, "warmup_tokens": 100},
        "budget": {"unique_tokens": 1000},
        "eval_every_tokens": 1000,
        "search": {"space": str(space), "n_trials": 8, "concurrency": 2, "scheduler": "none"},
    }
    path = tmp_path / "rep.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = automix.load_config(path)
    automix.search_objective(
        objective,
        automix.load_space(space),
        study="rep",
        work_dir=config.work_dir,
        verbose=False,
        **config.search.model_dump(exclude={"space"}),
    )
    return path, config


def test_report_has_every_section_and_lands_in_mlflow(study_config):
    path, config = study_config
    work = Workspace.from_config(config).work_dir
    assert main(["compare", str(path), "--seeds", "1,2", "--workers", "1"]) == 0
    compared = json.loads((work / "compare.json").read_text())
    assert [len(s["reruns"]["target_val_loss"]) for s in compared["levers"][0]["searches"]] == [2]
    # the same best re-trained at a wider, deeper target: its own file, other losses
    assert main(["compare", str(path), "--seeds", "1", "--workers", "1", "--width", "64", "--depth", "2"]) == 0
    target = json.loads((work / "compare_w64d2.json").read_text())
    assert (compared["model"], target["model"]) == ({"width": 32, "depth": 1}, {"width": 64, "depth": 2})
    assert target["levers"][0]["searches"][0]["reruns"]["target_val_loss"][0] != pytest.approx(
        compared["levers"][0]["searches"][0]["reruns"]["target_val_loss"][0]
    )
    retune = ["--retune", "learning_rate=0.5,1"]
    holdout = ["--holdout-seeds", "7"]
    assert (
        main(["multiplier", str(path), "--units", "500,1000", "--seeds", "1", "--workers", "2", *retune, *holdout]) == 0
    )
    multiplier = json.loads((work / "multiplier.json").read_text())
    assert {e["metric"] for e in multiplier["estimates"]} == {"target_val_loss", "target_acc"}
    reference = multiplier["points"]["reference"]
    assert [p["factors"] for p in reference["grid"]] == [{"learning_rate": 0.5}, {"learning_rate": 1.0}]
    assert np.shape(reference["runs"]["target_val_loss"]) == (2, 2, 1)  # U × grid × seeds
    # the chosen point per U re-trained from the held-out seed: other runs, other values
    assert np.shape(reference["holdout"]["target_val_loss"]) == (2, 1) and reference["holdout_seed"] == [7]
    assert reference["holdout"]["target_val_loss"][0][0] != pytest.approx(reference["target_val_loss"][0])
    plt_png = work / "transfer_lr_width.png"
    shutil.copy(Path(matplotlib.get_data_path()) / "images" / "matplotlib.png", plt_png)

    assert main(["report", str(path)]) == 0
    out = work / "report"
    page = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
        assert f"## {title}" in md
    assert "Not measured" not in md and "not both searched" not in md and "No transfer" not in md
    for name in ("history", "parallel", "contour", "importance", "pareto", "mix_vs_tune", "multiplier"):
        assert (out / f"{name}.png").stat().st_size > 5000, name
    rows = [r for r in md.split("## Lever importance")[1].splitlines() if r.startswith("| ")]
    assert rows[1].startswith("| weight_decay |")  # the surface's top lever ranks first
    assert "<script src=" not in page and "Plotly.newPlot" in page  # self-contained, interactive

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    parent = json.loads((work / "best.json").read_text())["mlflow_parent_run_id"]
    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert {"report/report.html", "report/report.md", "report/contour.png"} <= logged

    if shutil.which("chromium"):
        shot = out / "shot.png"
        script = Path(__file__).parents[2] / "scripts" / "render_report.py"
        subprocess.run([sys.executable, str(script), str(out / "report.html"), "--out", str(shot)], check=True)
        pixels = matplotlib.image.imread(shot)
        assert pixels.shape[1] == 1200 and pixels.std() > 0.05  # something was drawn


def test_report_without_a_study_is_a_usage_error(tmp_path, tiny, capsys):
    path = tmp_path / "none.yaml"
    data = {"target": str(tiny.target), "target_valid": str(tiny.target_valid)}
    path.write_text(
        yaml.safe_dump(
            {"study": "none", "work_dir": str(tmp_path / "w"), "data": data, "budget": {"unique_tokens": 100}}
        )
    )
    assert main(["report", str(path)]) == 2
    assert "automix search" in capsys.readouterr().err
    assert main(["multiplier", str(path), "--units", "1,x"]) == 2


def test_pareto_mask():
    assert pareto_mask([1.0, 1.1, 1.2, 1.05], [0.3, 0.5, 0.4, 0.2]).tolist() == [True, True, False, False]


def _study_data(tmp_path, rows: list[tuple[int, str, float | None, float]], params=("weight_decay", "mix_ratio")):
    """StudyData over an in-memory study: (number, state, value, weight_decay) per trial."""
    import optuna
    import pandas as pd

    from automix.analysis._readback import StudyData
    from automix.config._study import SearchConfig

    study = optuna.create_study()
    dists = {p: optuna.distributions.FloatDistribution(0.001, 10.0) for p in params}
    frame = []
    for number, state, value, wd in rows:
        point = {p: wd if p == "weight_decay" else 0.1 + 0.01 * number for p in params}
        trial = optuna.trial.create_trial(
            state=optuna.trial.TrialState[state],
            value=value if state == "COMPLETE" else None,
            params=point,
            distributions=dists,
            intermediate_values={1000: value} if value is not None else {},
        )
        study.add_trial(trial)
        frame.append({"number": number, "state": state, "value": value, "tokens": 1000.0, **point})
    config = SimpleNamespace(search=SearchConfig(), study="s")  # target_val_loss, min
    workspace = SimpleNamespace(work_dir=tmp_path)
    return StudyData(config, workspace, study, pd.DataFrame(frame), list(params), tracker=None)


def test_summary_lists_every_trial_sorted_with_its_state(tmp_path):
    from automix.analysis._report import Section, _summary

    data = _study_data(
        tmp_path,
        [(0, "PRUNED", 2.9, 1.0), (1, "COMPLETE", 2.5, 0.1), (2, "FAIL", None, 3.0), (3, "COMPLETE", 2.2, 0.3)],
    )
    section = Section("Summary")
    _summary(data, section)
    table = [block for block in section.md if block.startswith("| trial | state")][-1]
    body = [line.split(" | ")[:3] for line in table.splitlines()[2:]]
    assert [(r[0].strip("| "), r[1], r[2]) for r in body] == [
        ("3", "COMPLETE", "2.2"),
        ("1", "COMPLETE", "2.5"),
        ("0", "PRUNED", "2.9"),  # a pruned trial's value: its last evaluation
        ("2", "FAIL", ""),
    ]


def test_history_plots_pruned_trials_too(tmp_path):
    from automix.analysis._report import Report, Section, _history

    data = _study_data(tmp_path, [(0, "COMPLETE", 2.5, 0.1), (1, "PRUNED", 2.9, 1.0), (2, "PRUNED", 3.1, 2.0)])
    report, section = Report(tmp_path), Section("Optimisation history")
    _history(data, report, section)
    assert "1 complete and 2 pruned trials" in " ".join(section.md)
    page = "".join(section.html)
    assert '"name":"pruned","x":[1,2]' in page  # both pruned trials are in the figure
    assert (tmp_path / "history.png").stat().st_size > 5000


def test_importance_says_when_there_are_too_few_trials(tmp_path):
    from automix.analysis._report import Report, Section, _importance

    rows = [(n, "COMPLETE", 2.0 + 0.1 * n, 0.01 * (n + 1)) for n in range(4)]
    section = Section("Lever importance")
    _importance(_study_data(tmp_path, rows), Report(tmp_path), section)
    assert "Too few trials for this ranking to mean much: 4 completed trials for 2 varied params" in section.md[1]
    many = [(n, "COMPLETE", 2.0 + 0.1 * n, 0.01 * (n + 1)) for n in range(12)]
    section = Section("Lever importance")
    _importance(_study_data(tmp_path, many), Report(tmp_path), section)
    assert not any("Too few" in block for block in section.md)
