"""`automix train --from-run RUN_ID`: a trial re-created from its MLflow run alone, losses equal to the last digit."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from mlflow.tracking import MlflowClient

from automix.cli import main
from automix.trial._recreate import check_data, compare
from trainer.documents import content_key
from trainer.errors import CorpusError

SPACE = {
    "weight_decay": {"type": "float", "low": 0.01, "high": 3.0, "log": True},
    "learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
    "epochs": {"type": "int", "low": 1, "high": 3},
    "mix_ratio": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25},
}


@pytest.mark.slow
def test_a_trial_is_re_created_from_its_run_alone(real_study, capsys):
    path, work = real_study("fromrun", SPACE, search={"n_trials": 2, "scheduler": "none"})
    assert main(["search", str(path)]) == 0
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    exp = client.get_experiment_by_name("fromrun").experiment_id
    run = client.search_runs([exp], "tags.`automix.role` = 'trial' and tags.`optuna.trial_number` = '1'")[0]
    logged = client.get_metric_history(run.info.run_id, "target_val_loss")
    path.unlink()
    shutil.rmtree(work / "trials")  # only the MLflow run is left of the trial (and the corpora)
    capsys.readouterr()

    assert main(["train", "--from-run", run.info.run_id, "--work-dir", str(work)]) == 0
    out = capsys.readouterr().out
    assert "identical to the run" in out, out
    result = json.loads((work / "trials" / "0001" / "result.json").read_text())
    assert [h["target_val_loss"] for h in result["history"]] == [m.value for m in logged]  # bit for bit
    assert result["metrics"]["target_val_loss"] == run.data.metrics["target_val_loss"]
    assert (work / "trials" / "0001" / "model.pt").is_file()  # the trial's checkpoint is back where it was


def test_train_needs_a_config_or_a_run(capsys, tmp_path):
    assert main(["train"]) == 2
    assert "give a study CONFIG, or --from-run RUN_ID" in capsys.readouterr().err
    assert main(["train", "--from-run", "0" * 32, "--work-dir", str(tmp_path)]) == 2
    assert "no MLflow run" in capsys.readouterr().err


def test_a_changed_corpus_is_refused(make_cfg, tiny):
    config = make_cfg()
    digest = content_key(str(tiny.target), config.data.hf_max_documents)
    recorded = [{"role": "target", "source": str(tiny.target), "digest": digest}]
    check_data(config, recorded)
    with open(tiny.target / "b.txt", "a", encoding="utf-8") as f:
        f.write("T999 one more line\n")
    with pytest.raises(CorpusError, match=r"target corpus .* changed since the run"):
        check_data(config, recorded)


def test_compare_finds_the_last_digit():
    history = [{"tokens": 100, "loss": 2.5}, {"tokens": 200, "loss": 2.25}, {"tokens": 300, "loss": 2.0}]
    same = compare(history, {"loss": {100: 2.5, 200: 2.25}})  # a pruned run logged the first two only
    assert same.identical and same.compared == 2
    off = compare(history, {"loss": {200: math.nextafter(2.25, 3.0), 400: 1.0}})
    assert not off.identical
    assert off.differences == [("loss", 200, math.nextafter(2.25, 3.0), 2.25), ("loss", 400, 1.0, None)]
