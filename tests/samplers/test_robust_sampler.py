"""The default sampler `robustgp` (automix/samplers/_robust.py): what the wrapped GP is shown."""

from __future__ import annotations

import optuna
import optuna.distributions as od
import pytest
from optuna.trial import TrialState

from automix.config._space import SearchSpace
from automix.protocol import REJECTED
from automix.samplers import RobustSampler, make_sampler


class Recording(optuna.samplers.RandomSampler):
    """A sampler that keeps what the study looked like when it was asked."""

    def infer_relative_search_space(self, study, trial):
        return {"x": od.FloatDistribution(0, 1)}

    def sample_relative(self, study, trial, search_space):
        self.seen = [(t.state, t.value, t.params) for t in study.get_trials()]
        return {}


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_robust_sampler_clips_losses_at_the_median_and_counts_failures(direction):
    sign = 1 if direction == "minimize" else -1
    inner = Recording(seed=0)
    study = optuna.create_study(direction=direction, sampler=RobustSampler(inner))
    x = od.FloatDistribution(0, 1)
    for i, loss in enumerate([1.0, 1.1, 1.2, 7.0, 7.0]):  # two diverged runs
        study.add_trial(optuna.trial.create_trial(params={"x": i / 10}, distributions={"x": x}, value=sign * loss))
    study.add_trial(optuna.trial.create_trial(params={"x": 0.9}, distributions={"x": x}, state=TrialState.FAIL))
    study.add_trial(optuna.trial.create_trial(params={"x": 0.8}, distributions={"x": x}, state=TrialState.RUNNING))
    study.ask({"x": x})
    finished = [(v, p["x"]) for s, v, p in inner.seen if s == TrialState.COMPLETE]
    median = sign * 1.2
    assert finished == [
        (sign * 1.0, 0.0),
        (sign * 1.1, 0.1),
        (median, 0.2),
        (median, 0.3),
        (median, 0.4),
        (median, 0.9),
    ]
    running = [p for s, v, p in inner.seen if s == TrialState.RUNNING]
    assert running == [{"x": 0.8}, {}]  # the other pending point, and the trial being suggested
    assert study.trials[3].value == sign * 7.0  # the study itself keeps the truth


def test_robust_sampler_leaves_out_suggestions_the_searcher_rejected():
    """A rejected suggestion was never trained: neither an observation at the median nor in it."""
    inner = Recording(seed=0)
    study = optuna.create_study(sampler=RobustSampler(inner))
    x = od.FloatDistribution(0, 1)
    for i, loss in enumerate([1.0, 1.25, 1.75, 2.0]):
        study.add_trial(optuna.trial.create_trial(params={"x": i / 10}, distributions={"x": x}, value=loss))
    # Rejected suggestions are recorded FAIL (PRUNED by earlier versions); a real failure counts.
    for state, at in ((TrialState.FAIL, 0.7), (TrialState.PRUNED, 0.6)):
        rejected = {REJECTED: "train_tokens 3,200,000 > max_train_tokens 1,000,000"}
        study.add_trial(
            optuna.trial.create_trial(params={"x": at}, distributions={"x": x}, state=state, user_attrs=rejected)
        )
    study.add_trial(optuna.trial.create_trial(params={"x": 0.9}, distributions={"x": x}, state=TrialState.FAIL))
    study.ask({"x": x})
    median = 1.5
    assert [(s, v, p) for s, v, p in inner.seen] == [
        (TrialState.COMPLETE, 1.0, {"x": 0.0}),
        (TrialState.COMPLETE, 1.25, {"x": 0.1}),
        (TrialState.COMPLETE, median, {"x": 0.2}),
        (TrialState.COMPLETE, median, {"x": 0.3}),
        (TrialState.COMPLETE, median, {"x": 0.9}),
        (TrialState.RUNNING, None, {}),  # the trial being suggested
    ]


def test_robustgp_leaves_a_failing_region_where_optunas_gp_returns_to_it():
    """Losses are NaN (FAIL) for x > 0.5, the optimum sits just below it at x = 0.45."""
    space = {"x": od.FloatDistribution(0, 1)}

    def loss(x):
        return float("nan") if x > 0.5 else (x - 0.45) ** 2

    failed = {}
    for name in ("gp", "robustgp"):
        study = optuna.create_study(sampler=make_sampler(name, SearchSpace(space), 0))
        for _ in range(25):
            trial = study.ask(space)
            study.tell(trial, loss(trial.params["x"]))
        failed[name] = sum(t.state == TrialState.FAIL for t in study.trials[10:])  # after the start-up
    assert failed["robustgp"] < failed["gp"]
