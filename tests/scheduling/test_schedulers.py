"""Schedulers rank trials on stable-phase losses only: a decaying short trial sets no cutoff."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule, TrialScheduler

from automix.config._study import SearchConfig
from automix.protocol import DECAYING, KEEP_KEY, PROGRESS, TOKENS
from automix.scheduling._schedulers import (
    StableASHA,
    StableMedianStoppingRule,
    TokenBudget,
    checkpoint_cadence,
    make_scheduler,
)


@dataclass(frozen=True)
class Handle:
    """What the schedulers read of a trial: its id, its config (and it is hashable)."""

    trial_id: str
    keep: bool = False

    @property
    def config(self) -> dict:
        return {KEEP_KEY: True} if self.keep else {}


class Controller:
    """The one thing the median rule asks Tune's controller: which trials wait to run (none here)."""

    def get_live_trials(self):
        return []


def _feed(scheduler, reports, added=None):
    """Reports (trial, tokens, loss, decaying) in order; the action taken on each."""
    added = set() if added is None else added
    actions = []
    for name, tokens, loss, decaying in reports:
        if name not in added:
            added.add(name)
            scheduler.on_trial_add(Controller(), Handle(name))
        result = {TOKENS: tokens, "loss": loss, DECAYING: decaying}
        actions.append(scheduler.on_trial_result(Controller(), Handle(name), result))
    return actions


# A short trial already in its lr decay at the first rung shows a loss a long trial only reaches at
# its own end; a long trial in its stable phase must not be stopped for losing to it.
SHORT_DECAYED = [("short", 100, 1.0, True), ("short", 200, 0.9, True)]
LONG_STABLE = ("long", 200, 1.5, False)
BAD_STABLE = ("bad", 200, 3.0, False)

ASHA = {
    "time_attr": TOKENS,
    "metric": "loss",
    "mode": "min",
    "max_t": 1000,
    "grace_period": 200,
    "reduction_factor": 2,
}
MEDIAN = {"time_attr": TOKENS, "metric": "loss", "mode": "min", "grace_period": 200, "min_samples_required": 1}


@pytest.mark.parametrize(
    ("stable", "plain", "kwargs"),
    [(StableASHA, ASHAScheduler, ASHA), (StableMedianStoppingRule, MedianStoppingRule, MEDIAN)],
)
def test_decaying_reports_neither_count_nor_stop(stable, plain, kwargs):
    # The plain rule stops the long trial on the short one's decayed loss: the bias this removes.
    assert _feed(plain(**kwargs), [*SHORT_DECAYED, LONG_STABLE])[-1] == TrialScheduler.STOP
    actions = _feed(stable(**kwargs), [*SHORT_DECAYED, LONG_STABLE, BAD_STABLE])
    assert actions[:2] == [TrialScheduler.CONTINUE] * 2  # a decaying report never stops its own trial
    assert actions[2] == TrialScheduler.CONTINUE  # nothing stable to lose to yet
    assert actions[3] == TrialScheduler.STOP  # stable reports are still ranked


def test_a_decaying_finished_trial_is_forgotten_not_scored():
    asha = StableASHA(**ASHA)
    _feed(asha, SHORT_DECAYED)
    asha.on_trial_complete(Controller(), Handle("short"), {TOKENS: 250, "loss": 0.8, DECAYING: True})
    # No rung has a recorded loss (Ray's debug string shows each rung's cutoff, None when empty)...
    cutoffs = re.findall(r"Iter [\d.]+: (\S+)", asha.debug_string())
    assert cutoffs and set(cutoffs) == {"None"}
    with pytest.raises(KeyError):  # ...and ASHA no longer holds the trial: removing it finds nothing
        asha.on_trial_remove(Controller(), Handle("short"))
    assert _feed(asha, [LONG_STABLE])[-1] == TrialScheduler.CONTINUE


@pytest.mark.parametrize(("stable", "kwargs"), [(StableASHA, ASHA), (StableMedianStoppingRule, MEDIAN)])
def test_a_kept_trial_is_never_stopped(stable, kwargs):
    scheduler = stable(**kwargs)
    _feed(scheduler, [("good", 200, 1.0, False), ("good", 400, 0.9, False)])
    kept = Handle("again", keep=True)
    scheduler.on_trial_add(Controller(), kept)
    for tokens in (200, 400):  # worse than "good" at every rung
        result = {TOKENS: tokens, "loss": 5.0, DECAYING: False}
        assert scheduler.on_trial_result(Controller(), kept, result) == TrialScheduler.CONTINUE
    assert _feed(scheduler, [("bad", 200, 5.0, False)])[-1] == TrialScheduler.STOP  # the same loss stops others


def test_make_scheduler_builds_the_stable_phase_rules():
    for name, kind in (("asha", StableASHA), ("median", StableMedianStoppingRule)):
        assert isinstance(make_scheduler(SearchConfig(metric="loss", scheduler=name), 1000, 100), kind)


def test_token_budget_counts_what_each_trial_trained():
    """A trial that continued a checkpoint (freeze-thaw) counts the tokens it trained, not where it ended."""
    budget = TokenBudget(1000, already_spent=100)
    budget("a", {"tokens": 500})
    budget("b", {"tokens": 900, "trained_tokens": 300})
    assert budget.spent == 900 and not budget.stop_all()
    budget("b", {"tokens": 1000, "trained_tokens": 400})
    assert budget.spent == 1000 and budget.stop_all()


def test_checkpoints_fall_on_every_rung_when_a_scheduler_stops_trials():
    asha = SearchConfig(scheduler="asha", fidelity="tokens", grace_tokens=500)
    assert checkpoint_cadence(asha, eval_every=100, cadence=1_000_000) == 500  # rungs: 500·3^k
    tokens = SearchConfig(scheduler="asha", fidelity="tokens")
    assert checkpoint_cadence(tokens, eval_every=100, cadence=1_000_000) == 200
    # On the progress axis a rung is the first evaluation past a share of the trial's own T: any evaluation.
    assert checkpoint_cadence(SearchConfig(scheduler="asha"), eval_every=100, cadence=1_000_000) == 100
    assert checkpoint_cadence(asha, eval_every=100, cadence=None) is None  # checkpoints off stay off
    assert checkpoint_cadence(SearchConfig(scheduler="none"), eval_every=100, cadence=1_000_000) == 1_000_000


def _progress_reports(asha, trials):
    """Feed (name, T, [losses at each evaluation]) trial by trial, reporting progress; the last actions."""
    actions = {}
    for name, total, losses in trials:
        asha.on_trial_add(Controller(), Handle(name))
        for k, loss in enumerate(losses, 1):
            tokens = k * total // len(losses)
            decaying = k == len(losses)  # the last evaluation is in the lr decay, as the trainer's
            result = {TOKENS: tokens, PROGRESS: k / len(losses), "loss": loss, DECAYING: decaying}
            actions[name] = asha.on_trial_result(Controller(), Handle(name), result)
            if actions[name] == TrialScheduler.STOP:
                break
    return actions


def test_the_progress_axis_compares_a_long_run_at_the_same_point_of_its_own_schedule():
    # Two short runs (T = 900) and a long one (T = 9000), each evaluated 9 times. At equal tokens the
    # long run (1.5 at its first evaluation, 1000 tokens) is worse than the short ones at their end;
    # at the same share of its own budget it is the best of the three.
    trials = [("short1", 900, [2.0, 1.6, 1.4, 1.3, 1.25, 1.2, 1.15, 1.1, 1.05]),
              ("short2", 900, [2.1, 1.7, 1.5, 1.4, 1.3, 1.25, 1.2, 1.15, 1.1]),
              ("long", 9000, [1.5, 1.2, 1.1, 1.0, 0.95, 0.9, 0.85, 0.8, 0.75])]  # fmt: skip
    by_progress = make_scheduler(SearchConfig(metric="loss"), 9000, 100)
    assert _progress_reports(by_progress, trials)["long"] == TrialScheduler.CONTINUE
    by_tokens = make_scheduler(SearchConfig(metric="loss", fidelity="tokens", rungs=None), 9000, 100)
    assert _progress_reports(by_tokens, trials)["long"] == TrialScheduler.STOP


def test_one_rung_stops_a_trial_at_its_first_rung_only():
    # "late" is the worst at 1/3 of its budget but was among the best at 1/9: with one rung it
    # runs to its end, with every rung it is stopped at 1/3.
    early = [(f"t{i}", 900, [1.0 + i / 10] * 9) for i in range(3)]
    late = ("late", 900, [1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0])
    one = make_scheduler(SearchConfig(metric="loss"), 900, 100)
    assert _progress_reports(one, [*early, late])["late"] == TrialScheduler.CONTINUE
    every = make_scheduler(SearchConfig(metric="loss", rungs=None), 900, 100)
    assert _progress_reports(every, [*early, late])["late"] == TrialScheduler.STOP
    worst = ("worst", 900, [5.0] * 9)  # the first rung still stops what is worst there
    assert _progress_reports(make_scheduler(SearchConfig(metric="loss"), 900, 100), [*early, worst])["worst"] == "STOP"
