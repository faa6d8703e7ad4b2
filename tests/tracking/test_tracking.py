"""MLflow stores: a new sqlite store is a copy of one migrated template, and still a real MLflow store;
a trial's run holds its config, data, sizes, curve and model, and reads back into the trial."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from automix.config._space import parse_space
from automix.config._study import default_cache_dir
from automix.errors import ConfigError
from automix.protocol import FINAL_KEY, TRIAL_KEY
from automix.scheduling._callbacks import MlflowTrialCallback, TrialLogging, trial_logging
from automix.study import Workspace
from automix.tracking._store import Tracker, flatten, seed_sqlite_store
from automix.tracking._trial import read_trial_run
from automix.trial import Reporter, TrainerObjective
from automix.trial._recreate import trial_config
from trainer.documents import content_key
from trainer.model import build_model
from trainer.train import StopTraining


def default_tracking_uri(work_dir) -> str:
    """The store `automix.Workspace` gives a work directory."""
    return f"sqlite:///{work_dir / 'mlflow.db'}"


def _runs(uri: str, experiment: str) -> list[str]:
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else [r.info.run_name for r in client.search_runs([found.experiment_id])]


def test_new_stores_are_independent_copies_of_one_template(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    one = Tracker.open(default_tracking_uri(first), "study", first / "art")
    templates = list((default_cache_dir() / "mlflow").glob("empty-store-*.db"))
    assert len(templates) == 1
    one.end(one.start_parent("search-a", {"x": 1}, {}), "FINISHED")

    two = Tracker.open(default_tracking_uri(second), "study", second / "art")  # from the template, not from `first`
    two.end(two.start_parent("search-b", {"x": 2}, {}), "FINISHED")
    assert _runs(default_tracking_uri(first), "study") == ["search-a"]
    assert _runs(default_tracking_uri(second), "study") == ["search-b"]
    # MLflow verifies the schema revision on open: the copy is at its head, with its default experiment.
    names = {e.name for e in MlflowClient(tracking_uri=default_tracking_uri(second)).search_experiments()}
    assert names == {"Default", "study"}


def test_an_existing_store_is_never_replaced(tmp_path):
    uri = default_tracking_uri(tmp_path)
    tracker = Tracker.open(uri, "study", tmp_path / "art")
    tracker.end(tracker.start_parent("kept", {}, {}), "FINISHED")
    seed_sqlite_store(uri)
    Tracker.open(uri, "study", tmp_path / "art")
    assert _runs(uri, "study") == ["kept"]


# A trial's run: its config, data and sizes at start; result, curve and checkpoint at its end.


def _ray_trial(number: int, params: dict, gpus: float = 0) -> SimpleNamespace:
    """What the callback reads of a Ray Tune trial."""
    resources = SimpleNamespace(required_resources={"CPU": 1.0, "GPU": gpus})
    config = {**params, TRIAL_KEY: number}
    return SimpleNamespace(trial_id=f"ray{number}", config=config, last_result={}, placement_group_factory=resources)


@pytest.fixture
def trials(tmp_path, make_cfg):
    """Runs trials of a real TrainerObjective on the tiny corpora through the search's MLflow callback."""
    base = make_cfg(unique_tokens=1000, epochs=2, mix_ratio=0.25).model_copy(
        update={"eval_every_tokens": 512, "checkpoint_every_tokens": None}
    )
    space = parse_space(
        {
            "weight_decay": {"type": "float", "low": 0.01, "high": 1.0},
            "mix_ratio": {"type": "float", "low": 0.0, "high": 0.5},
        }
    )
    objective = TrainerObjective(base, space, Workspace.of("s", tmp_path).trial_dir, threads=1)
    tracker = Tracker.open(default_tracking_uri(tmp_path), "s", tmp_path / "art")
    tracker.start_parent("search-s", {}, {"study": "s"})

    def run(number: int, stop_after: int | None = None, gpus: float = 0, **logging) -> tuple[str, object]:
        callback = MlflowTrialCallback(
            tracker, {"study": "s"}, ["target_val_loss"], TrialLogging(objective.describe, **logging)
        )
        params = {"weight_decay": 0.1 * (number + 1), "mix_ratio": 0.25}
        trial = _ray_trial(number, params, gpus)
        callback.on_trial_start(0, [], trial)

        def sink(metrics: dict) -> None:
            callback.on_trial_result(0, [], trial, metrics)
            if stop_after is not None and len(reporter_history) >= stop_after:
                raise StopTraining  # the scheduler stops the trial at this report

        reporter_history: list = []
        reporter = Reporter(number, lambda m: (reporter_history.append(m), sink(m)))
        final = objective(params, reporter)
        trial.last_result = {**reporter.last, **final} | ({} if stop_after else {FINAL_KEY: 1.0})
        callback.on_trial_complete(0, [], trial)
        callback.on_experiment_end([])
        assert callback.unwritten() == []
        return callback.run_ids[number], objective.config_for(params, number)

    return SimpleNamespace(run=run, client=tracker.client, tracker=tracker, uri=default_tracking_uri(tmp_path))


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        found += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return sorted(found)


def test_a_trial_run_holds_its_config_data_sizes_curve_and_model(trials, tiny):
    run_id, config = trials.run(0)
    run = trials.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["state"] == "COMPLETE"
    # Searched params by name (and marked), the effective config in full under config.*.
    params = run.data.params
    assert json.loads(run.data.tags["automix.searched"]) == ["weight_decay", "mix_ratio"]
    assert params["weight_decay"] == params["config.optim.weight_decay"] == "0.1"
    effective = {k.removeprefix("config."): v for k, v in params.items() if k.startswith("config.")}
    assert effective.keys() == flatten(config.model_dump()).keys()
    assert effective["data.target"] == str(tiny.target) and effective["out_dir"] == config.out_dir

    # Sizes as trained, numbers the UI filters by: T from the stream, parameters of the real model.
    metrics = run.data.metrics
    history = trials.client.get_metric_history(run_id, "tokens")
    assert metrics["budget/train_tokens"] == max(m.value for m in history)
    assert metrics["budget/target_tokens"] + metrics["budget/aux_tokens"] == metrics["budget/train_tokens"]
    model = build_model(config.model, 257, config.data.seq_len)
    assert metrics["model/parameters"] == sum(p.numel() for p in model.parameters())
    assert metrics["budget/flops"] == metrics["model/flops_per_token"] * metrics["budget/train_tokens"]

    # Dataset inputs: each corpus, digest = the content hash the token cache keys it by.
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"target", "auxiliary", "target_valid", "aux_valid"}
    target = inputs["target"]
    assert target.dataset.digest == content_key(str(tiny.target), config.data.hf_max_documents)
    tokens = sum(len(doc.encode("utf-8")) + 1 for doc in tiny.target_docs())  # bytes and an eos each
    assert json.loads(target.dataset.profile) == {"tokens": tokens, "documents": len(tiny.target_docs())}
    tags = {t.key: t.value for t in target.tags}
    assert tags["mlflow.data.context"] == "training" and tags["automix.used_tokens"] == "1000"
    assert {t.key: t.value for t in inputs["aux_valid"].tags}["mlflow.data.context"] == "validation"

    # Artifacts: the result, the curve and the checkpoint as `automix export` reads it.
    assert _artifacts(trials.client, run_id) == [
        "curve.png",
        "model/byte_tokenizer.json",
        "model/model.pt",
        "result.json",
    ]
    local = Path(trials.client.download_artifacts(run_id, ""))
    result = json.loads((local / "result.json").read_text())
    losses = trials.client.get_metric_history(run_id, "target_val_loss")
    assert [h["target_val_loss"] for h in result["history"]] == [m.value for m in losses]
    assert result["state"] == "COMPLETE" and result["config"] == config.model_dump()
    assert (local / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (local / "model" / "model.pt").read_bytes() == (Path(config.out_dir) / "model.pt").read_bytes()


def test_the_run_reads_back_into_the_trials_config(trials):
    run_id, config = trials.run(0)
    recorded = read_trial_run(trials.uri, run_id)
    assert recorded.state == "COMPLETE" and recorded.tokenizer == "byte"
    assert trial_config(recorded.config).model_dump() == config.model_dump()  # every value, typed back
    assert {d["role"] for d in recorded.datasets} == {"target", "auxiliary", "target_valid", "aux_valid"}
    parent = trials.tracker.parent_run_id
    with pytest.raises(ConfigError, match="no effective config"):
        read_trial_run(trials.uri, parent)
    with pytest.raises(ConfigError, match="no MLflow run"):
        read_trial_run(trials.uri, "0" * 32)


def test_a_pruned_trial_is_killed_and_keeps_no_model(trials):
    run_id, _ = trials.run(1, stop_after=1)
    run = trials.client.get_run(run_id)
    # KILLED, not FINISHED: the UI shows a stopped trial with another icon than a finished one.
    assert run.info.status == "KILLED" and run.data.tags["state"] == "PRUNED"
    assert _artifacts(trials.client, run_id) == ["curve.png", "result.json"]


def test_models_are_opt_out(trials):
    run_id, _ = trials.run(2, log_models=False)
    assert _artifacts(trials.client, run_id) == ["curve.png", "result.json"]


def test_system_metrics_come_with_a_gpu_or_when_asked(trials, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")
    cpu_auto, _ = trials.run(0)
    gpu_auto, _ = trials.run(1, gpus=0.5)
    asked, _ = trials.run(2, system_metrics=True)
    off, _ = trials.run(3, gpus=0.5, system_metrics=False)

    def system(run_id: str) -> set[str]:
        return {k for k in trials.client.get_run(run_id).data.metrics if k.startswith("system/")}

    assert not system(cpu_auto) and not system(off)
    assert "system/cpu_utilization_percentage" in system(gpu_auto) & system(asked)
    assert "system/system_memory_usage_megabytes" in system(asked)


def test_auto_system_metrics_are_off_on_a_cluster():
    class Objective:
        def describe(self, params, number, requeued_from):
            return None

    assert trial_logging(Objective(), {}, local=True).system_metrics == "auto"
    assert trial_logging(Objective(), {}, local=False).system_metrics is False  # the driver's node is not the trials'
    assert trial_logging(Objective(), {"system_metrics": True}, local=False).system_metrics is True
    assert trial_logging(lambda p, r: {}, {"log_models": False}, local=True) == TrialLogging(None, False, "auto")


def test_the_best_trial_is_tagged_and_only_it(tmp_path):
    tracker = Tracker.open(default_tracking_uri(tmp_path), "s", tmp_path / "art")
    tracker.start_parent("search-s", {}, {})
    runs = {
        (study, n): tracker.start_child(f"trial-{n:04d}", {}, {"study": study, "optuna.trial_number": str(n)})
        for study in ("s", "other")
        for n in (0, 1)
    }

    def best() -> set:
        return {k for k, run_id in runs.items() if tracker.client.get_run(run_id).data.tags.get("automix.best")}

    assert tracker.mark_best("other", 0) == runs["other", 0]
    assert tracker.mark_best("s", 1) == runs["s", 1] and best() == {("s", 1), ("other", 0)}
    tracker.mark_best("s", 0)  # a resumed search found a better one
    assert best() == {("s", 0), ("other", 0)}
    assert tracker.mark_best("s", None) is None and best() == {("other", 0)}


def test_the_best_model_is_registered_once_per_run_and_the_alias_follows_the_best(tmp_path):
    tracker = Tracker.open(default_tracking_uri(tmp_path), "s", tmp_path / "art")
    tracker.start_parent("search-s", {}, {})
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    runs = [tracker.start_child(f"trial-{n:04d}", {}, {"study": "s"}) for n in range(3)]
    for run_id in runs[:2]:
        tracker.client.log_artifact(run_id, str(model), "model")
    assert tracker.register_best("s", runs[0]) == "automix-s/1"
    assert tracker.register_best("s", runs[0]) == "automix-s/1"  # a resumed search: no second version
    assert tracker.register_best("s", runs[1]) == "automix-s/2"  # a better trial: the alias moves
    assert tracker.client.get_model_version_by_alias("automix-s", "best").run_id == runs[1]
    assert tracker.register_best("s", runs[2]) is None  # no model logged (tracking.log_models: false)
    assert tracker.register_best("s", None) is None
