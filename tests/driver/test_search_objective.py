"""The search engine on cheap custom objectives: samplers, pruning, resume, budgets, multi-objective."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import optuna
import pytest
import ray
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from ray.tune.search import Searcher

import automix
from automix.config._space import parse_space
from automix.config._study import SearchConfig
from automix.driver._search import sampler_seed
from automix.protocol import FINAL_KEY, TRIAL_KEY
from automix.samplers import make_sampler, sampler_names
from automix.scheduling._searcher import StudySearcher

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
import custom_objective  # noqa: E402

pytestmark = pytest.mark.slow

SPACE = parse_space(
    {
        "x": {"type": "float", "low": -4.0, "high": 4.0, "step": 0.5},
        "y": {"type": "int", "low": 0, "high": 4},
    }
)


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def bowl(params, report):
    """(x-1)² + (y-2)² + 1, approached over four evaluations of 100 'tokens' each."""
    final = (params["x"] - 1) ** 2 + (params["y"] - 2) ** 2 + 1
    for step in range(1, 5):
        report({"tokens": 100 * step, "loss": final + 4.0 / step})
    return {"loss": final}


def run(tmp_path, name, objective=bowl, **kw):
    space = kw.pop("space", SPACE)
    settings = {"metric": "loss", "concurrency": 2, "scheduler": "none", "verbose": False, **kw}
    return automix.search_objective(objective, space, study=name, work_dir=tmp_path / name, **settings)


@pytest.mark.parametrize("sampler", sampler_names())
def test_every_sampler_is_seeded(sampler):
    def suggestions(seed):
        study = optuna.create_study(sampler=make_sampler(sampler, SPACE, seed))
        out = []
        for _ in range(12):
            trial = study.ask(SPACE.distributions)
            study.tell(trial, (trial.params["x"] - 1) ** 2 + trial.params["y"])
            out.append(tuple(trial.params.values()))
        return out

    assert suggestions(0) == suggestions(0)
    if sampler != "grid":  # the grid is the same set, only its order is seeded
        assert suggestions(0) != suggestions(1)


@pytest.mark.parametrize("sampler", ["tpe", "gp", "botorch", "grid"])
def test_samplers_run_trials_through_ray_into_storage(tmp_path, sampler):
    result = run(tmp_path, sampler, sampler=sampler, n_trials=4)
    stored = optuna.load_study(study_name=sampler, storage=f"sqlite:///{tmp_path / sampler / 'optuna.db'}")
    assert [t.state for t in stored.trials] == [TrialState.COMPLETE] * 4
    assert result.best_value == min(t.value for t in stored.trials)
    assert result.trials["state"].tolist() == ["COMPLETE"] * 4


def test_a_sampler_object_is_used_as_given_and_named_by_its_class(tmp_path):
    # Seed 7, not the search's seed 0: a sampler built by name would draw other points.
    result = run(tmp_path, "object", sampler=optuna.samplers.RandomSampler(seed=7), n_trials=4, concurrency=1)
    alone = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    assert [t.params for t in result.study.trials] == [alone.ask(SPACE.distributions).params for _ in range(4)]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'object' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("object").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("automix.role") == "search")
    assert parent.data.tags["sampler"] == "RandomSampler"


def test_asha_stopped_trials_are_pruned_not_complete(tmp_path):
    result = run(tmp_path, "asha", sampler="random", n_trials=8, scheduler="asha", grace_tokens=100, reduction_factor=2)
    states = {t.state for t in result.study.trials}
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states
    for t in result.study.trials:
        final_step = max(t.intermediate_values)
        if t.state == TrialState.PRUNED:
            assert final_step < 400  # stopped before its last evaluation
            assert t.value is None or t.value == t.intermediate_values[final_step]
        else:
            assert final_step == 400 and t.value == pytest.approx(
                (t.params["x"] - 1) ** 2 + (t.params["y"] - 2) ** 2 + 1
            )


def bowl_with_progress(params, report):
    """`bowl` that also reports its progress, as the built-in trainer does."""
    final = (params["x"] - 1) ** 2 + (params["y"] - 2) ** 2 + 1
    for step in range(1, 5):
        report({"tokens": 100 * step, "loss": final + 4.0 / step if step < 4 else final, "progress": step / 4})
    return {"loss": final}


def test_a_trial_stopped_at_its_last_report_is_complete(tmp_path):
    # ASHA stops every trial that reaches max_t, here at its last report: before the objective returns.
    result = run(
        tmp_path, "end", bowl_with_progress, sampler="random", n_trials=6, scheduler="asha", grace_tokens=100,
        reduction_factor=2, max_train_tokens=400,
    )  # fmt: skip
    ended = [t for t in result.study.trials if max(t.intermediate_values) == 400]
    assert ended, "some trials must reach max_t"
    for t in ended:
        assert t.state == TrialState.COMPLETE
        assert t.value == pytest.approx((t.params["x"] - 1) ** 2 + (t.params["y"] - 2) ** 2 + 1)
    assert all(t.state == TrialState.PRUNED for t in result.study.trials if max(t.intermediate_values) < 400)


def late_bloomer(params, report):
    """x=0 looks worst at every early report but ends best; x=1 and x=2 are flat. A trial told to
    continue another one resumes, like the trainer, from a checkpoint at 100 tokens."""
    curve = [3.0, 3.0, 3.0, 0.5] if params["x"] == 0 else [1.0 + params["x"]] * 4
    for step, loss in enumerate(curve, 1):
        if report.requeued_from is not None and step == 1:
            continue
        report({"tokens": 100 * step, "loss": loss, "progress": step / 4})
    continued = report.requeued_from
    return {"loss": curve[-1], "continued_from": -1 if continued is None else continued}


def test_repeats_a_pruned_point_to_its_end_and_never_a_finished_one(tmp_path):
    space = parse_space({"x": {"type": "int", "low": 0, "high": 2}})
    result = run(
        tmp_path, "again", late_bloomer, space=space, sampler="random", seed=3, n_trials=10, concurrency=1,
        scheduler="asha", grace_tokens=100, reduction_factor=2,
    )  # fmt: skip
    trials = result.study.trials
    trained = [t for t in trials if "rejected" not in t.user_attrs]
    pruned = [t.params["x"] for t in trained if t.state == TrialState.PRUNED]
    complete = [t.params["x"] for t in trained if t.state == TrialState.COMPLETE]
    assert pruned and len(set(pruned)) == len(pruned)  # the late bloomer is cut once, never twice
    assert sorted(complete) == [0, 1, 2]  # every point trained to its end exactly once
    repeats = [t for t in trained if "repeat_of_pruned" in t.user_attrs]
    assert repeats and all(t.state == TrialState.COMPLETE for t in repeats)
    # each repeat is told to continue the pruned trial's checkpoint (freeze-thaw), a fresh point is not
    assert all(t.user_attrs["final_metrics"]["continued_from"] == t.user_attrs["repeat_of_pruned"] for t in repeats)
    assert all(
        t.user_attrs["final_metrics"]["continued_from"] == -1
        for t in trained
        if t not in repeats and t.state == TrialState.COMPLETE
    )
    # a repeat skipped what it continued, yet its curve is whole: the pruned trial's reports before its own
    assert all(sorted(t.intermediate_values) == [100, 200, 300, 400] for t in repeats)
    # The three points exhaust the space: further suggestions are rejected untrained, and the search ends.
    assert all(t.user_attrs["rejected"].startswith("same params as trial") for t in trials if t not in trained)
    assert len(trained) < 10
    assert result.best_params == {"x": 0} and result.best_value == 0.5


def test_resume_after_a_crash_keeps_finished_trials_and_reaches_the_total(tmp_path):
    first = run(tmp_path, "resume", n_trials=3)
    kept = {t.number: t.value for t in first.study.trials}
    # Leave the state a killed driver leaves: a trial RUNNING in the study and its run open in MLflow.
    crashed = first.study.ask(SPACE.distributions)
    client = MlflowClient(f"sqlite:///{tmp_path / 'resume' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("resume").experiment_id
    open_run = client.create_run(exp, tags={"mlflow.parentRunId": first.mlflow_parent_run_id})

    with pytest.raises(automix.ConfigError, match="resume=True"):
        run(tmp_path, "resume", n_trials=6)
    result = run(tmp_path, "resume", n_trials=6, resume=True)
    trials = result.study.trials
    assert {n: trials[n].value for n in kept} == kept  # finished trials kept, not re-run
    assert trials[crashed.number].state == TrialState.FAIL
    requeued = [t for t in trials if t.user_attrs.get("requeued_from") == crashed.number]
    assert len(requeued) == 1 and requeued[0].params == crashed.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 6
    # The resumed sampler does not replay the first invocation's draws (they would repeat trained points).
    fresh = [t for t in trials[crashed.number + 1 :] if "requeued_from" not in t.user_attrs]
    assert fresh[0].params != trials[0].params
    assert client.get_run(open_run.info.run_id).info.status == "KILLED"
    assert not client.search_runs([exp], "attributes.status = 'RUNNING'")


def test_max_train_tokens_rejects_before_training(tmp_path):
    # The default sampler (tpe) models finished trials only: past its 10 start-up trials the rejections
    # must not make it loop on one point.
    result = run(tmp_path, "cap", n_trials=12, cost=lambda p: 1000 * (p["y"] + 1), max_train_tokens=2000)
    rejected = [t for t in result.study.trials if "rejected" in t.user_attrs]
    completed = [t for t in result.study.trials if t.state == TrialState.COMPLETE]
    assert len(completed) == 12
    assert all(t.params["y"] <= 1 for t in completed)
    assert all(t.state == TrialState.FAIL and not t.intermediate_values for t in rejected)
    over = [t for t in rejected if t.user_attrs["rejected"].startswith("train_tokens")]
    assert over  # the space has y up to 4: some suggestions were over the cap
    assert all(t.constraints["train_tokens"] > 0 for t in over)
    assert all(t in over or t.user_attrs["rejected"].startswith("same params as trial") for t in rejected)
    assert set(result.mlflow_run_ids) == {t.number for t in completed}  # rejected configs never started


def test_the_searcher_retries_rejections_from_reproducible_random_suggestions():
    def suggestions(seed, retry_seed=0):
        searcher = StudySearcher(
            space=SPACE.distributions, metric="loss", mode="min", sampler=make_sampler("gp", SPACE, seed),
            cost=lambda p: 1000 * (p["y"] + 1), max_cost=2000, target=8, seed=retry_seed,
        )  # fmt: skip
        configs = []
        while (config := searcher.suggest(trial_id := f"t{len(configs)}")) != Searcher.FINISHED:
            configs.append(config)
            loss = config["x"] ** 2
            searcher.on_trial_result(trial_id, {"tokens": 100, "loss": loss + 1})
            searcher.on_trial_complete(trial_id, {"tokens": 200, "loss": loss, FINAL_KEY: True})
        return configs, searcher.study.trials

    configs, trials = suggestions(0)
    assert len(configs) == 8 and all(c["y"] <= 1 for c in configs)
    rejected = [t for t in trials if "rejected" in t.user_attrs]
    assert rejected and all(t.state == TrialState.FAIL for t in rejected)
    assert {c[TRIAL_KEY] for c in configs} == {t.number for t in trials if t not in rejected}
    assert all(t.intermediate_values == {100: t.params["x"] ** 2 + 1} for t in trials if t not in rejected)
    assert suggestions(0)[0] == configs  # the random retries after a rejection are seeded too
    # ...by the search's seed: another seed draws other retries (they depended on the trial count alone)
    assert suggestions(0, retry_seed=1)[0] != configs


def test_retries_for_trials_running_at_once_never_draw_the_same_point():
    # Retried suggestions used to be seeded by the trial count plus the attempt, which two retry
    # chains could share: two trials running at once then trained the same params.
    space = parse_space({"x": {"type": "float", "low": -4.0, "high": 4.0}, "y": {"type": "int", "low": 0, "high": 4}})
    searcher = StudySearcher(
        space=space.distributions, metric="loss", mode="min", sampler=make_sampler("gp", space, 0),
        cost=lambda p: 1000 * (p["y"] + 1), max_cost=1000, target=12, seed=0,
    )  # fmt: skip
    configs = [searcher.suggest(f"t{i}") for i in range(12)]  # none finishes: all run at once
    points = [tuple(sorted((k, v) for k, v in c.items() if k != TRIAL_KEY)) for c in configs]
    assert len(set(points)) == len(points)


def test_token_budget_stops_the_search(tmp_path):
    result = run(tmp_path, "budget", n_trials=20, concurrency=1, max_total_tokens=1000)
    done = [t for t in result.study.trials if t.state == TrialState.COMPLETE]
    assert 2 <= len(done) < 20  # 400 tokens per trial: the budget ends it long before 20 trials


def test_enqueued_points_run_first(tmp_path):
    result = run(tmp_path, "enqueue", n_trials=3, concurrency=1, enqueue=[{"x": 1.0, "y": 2}])
    assert result.study.trials[0].params == {"x": 1.0, "y": 2}
    assert result.best_value == 1.0


def test_multi_objective_gives_a_pareto_front(tmp_path):
    def two(params, report):
        report({"tokens": 1, "loss": params["x"] ** 2, "acc": -((params["x"] - 2) ** 2)})
        return {"loss": params["x"] ** 2, "acc": -((params["x"] - 2) ** 2)}

    result = run(tmp_path, "mo", two, n_trials=8, sampler="random", metric=["loss", "acc"], mode=["min", "max"])
    front = result.pareto_front
    assert front and result.best_value == front[0].values and len(result.best_value) == 2
    for a in front:  # nobody on the front is dominated by another trial
        assert not any(b.values[0] < a.values[0] and b.values[1] > a.values[1] for b in result.study.trials)
    off_front = [t for t in result.study.trials if t.number not in {f.number for f in front}]
    for b in off_front:  # and everyone off it is dominated by someone on it
        assert any(a.values[0] <= b.values[0] and a.values[1] >= b.values[1] for a in front)


def test_custom_objective_example_finds_the_optimum(tmp_path):
    result = custom_objective.main(str(tmp_path / "custom"), n_trials=30)
    assert result.best_value < 1.1 + 0.05  # optimum is 1.1
    for key, opt in custom_objective.OPTIMUM.items():
        assert abs(math.log10(result.best_params[key] / opt)) < 0.25
    assert len(result.mlflow_run_ids) == 30


def test_search_config_rejects_mismatched_metric_and_mode():
    with pytest.raises(ValueError, match="metric and mode"):
        SearchConfig(metric=["a", "b"], mode="min")


def test_the_searcher_finishes_without_asking_once_a_finite_space_is_trained():
    space = parse_space(
        {"x": {"type": "int", "low": 0, "high": 2}, "r": {"type": "float", "low": 0, "high": 0.5, "step": 0.25}}
    )
    searcher = StudySearcher(
        space=space.distributions, metric="loss", mode="min", sampler=make_sampler("random", space, 0),
        cost=lambda p: p["x"] + p["r"], max_cost=2.0, target=100,
    )  # fmt: skip
    finished = 0
    while (config := searcher.suggest(trial_id := f"t{finished}")) != Searcher.FINISHED:
        searcher.on_trial_complete(trial_id, {"tokens": 1, "loss": config["x"] + config["r"], FINAL_KEY: True})
        finished += 1
    trials = searcher.study.trials
    trained = {(t.params["x"], t.params["r"]) for t in trials if t.state == TrialState.COMPLETE}
    assert len(trained) == 7 and finished == 7  # the 3 × 3 space but x = 2 with r > 0 (over the cap), each once
    assert searcher.suggest("later") == Searcher.FINISHED
    assert len(searcher.study.trials) == len(trials)  # asking again (a resume) adds no rejected trials


def test_a_resumed_grid_stays_on_its_grid():
    space = parse_space({"x": {"type": "float", "low": 0, "high": 1, "grid": [0.0, 0.25, 0.5, 0.75, 1.0]}})
    storage = optuna.storages.InMemoryStorage()

    def drive(seed: int, target: int) -> None:
        searcher = StudySearcher(
            space=space.distributions, metric="loss", mode="min", sampler=make_sampler("grid", space, seed),
            study_name="sweep", storage=storage, target=target,
        )  # fmt: skip
        for n in itertools.count():
            if (config := searcher.suggest(f"{seed}-{n}")) == Searcher.FINISHED:
                return
            searcher.on_trial_complete(f"{seed}-{n}", {"tokens": 1, "loss": config["x"], FINAL_KEY: True})

    drive(seed=0, target=2)
    drive(seed=7, target=5)  # a resume whose shuffle differs: its first points were trained already
    trials = optuna.load_study(study_name="sweep", storage=storage).trials
    trained = sorted(t.params["x"] for t in trials if t.state == TrialState.COMPLETE)
    assert trained == [0.0, 0.25, 0.5, 0.75, 1.0]  # every grid point once, none off the grid


def test_joining_drivers_with_neighbouring_seeds_draw_differently():
    """Seeds 0 and 1 on two drivers: whichever joins second must not replay the other's draws."""
    seeds = {sampler_seed(SearchConfig(seed=s), invocation) for s, invocation in ((0, 1), (1, 0), (0, 0), (1, 1))}
    assert len(seeds) == 4
    assert sampler_seed(SearchConfig(seed=7), 0) == 7  # a first invocation keeps the configured seed
    grid = SearchConfig(seed=7, sampler="grid")
    assert sampler_seed(grid, 3) == 7  # a grid keeps its shuffle across invocations
