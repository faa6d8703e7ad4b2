"""A Ray Tune searcher that drives an Optuna study through its ask/tell API and tells it the truth.

Stock `OptunaSearch` records a trial stopped by the scheduler as COMPLETE with its partial loss,
so the sampler mistakes an early estimate for a final value; it also reports intermediate values
at Ray's iteration count. `StudySearcher` asks and tells the study itself (its docstring lists
what it records and rejects; docs/design.md, "The searcher drives Optuna's ask/tell itself").
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.pruners import NopPruner
from optuna.samplers import BaseSampler, GridSampler, RandomSampler
from optuna.storages import BaseStorage, InMemoryStorage
from optuna.trial import TrialState
from ray import cloudpickle
from ray.tune.search import Searcher

from automix.config._space import SearchSpace
from automix.errors import ConfigError
from automix.protocol import (
    COST_KEYS,
    FAIL_REASON,
    FINAL_KEY,
    FINAL_METRICS,
    KEEP_KEY,
    NODE_KEYS,
    REJECTED,
    REPEAT_OF_PRUNED,
    REQUEUED_FROM,
    REQUEUED_KEY,
    TRIAL_KEY,
    final_state,
    finished,
    trial_metrics,
)
from automix.samplers import grid_values

MAX_REJECTIONS = 1000
MAX_POINTS = 100_000  # a finite space up to this size is checked point by point for exhaustion
MAX_REPEATS = 100  # suggestions in a row that were all trained already: the space is exhausted
SAME_PARAMS = "same params as trial"

log = logging.getLogger(__name__)


class StudySearcher(Searcher):
    """Ray Tune searcher over an Optuna study: truthful trial states, token steps, trial numbers
    and a cost cap. It:

    - marks a trial COMPLETE only if it trained to its end (its objective returned: the final result
      carries `FINAL_KEY`; or its last report said `progress` 1.0), PRUNED if the scheduler stopped it
      earlier (its intermediate values stay), FAIL if it raised or its value is not finite;
    - reports intermediate values at step = tokens, the axis schedulers compare trials on;
    - tags each suggestion with the Optuna trial number (`TRIAL_KEY`) so trial dirs and MLflow runs
      carry the same number as the study, and a re-queued trial with the crashed one's (`REQUEUED_KEY`);
    - stores each trial's cost (`tokens`, `wall_time_s`) and, from its first result on, the Ray node
      running it (`node_ip`, `node_id`; updated if a retry moves it) as Optuna user attributes;
    - rejects, before training, a suggestion over the per-trial cost cap (it gets a positive
      `train_tokens` constraint, `Trial.set_constraint`) or with the params of a trial already trained
      to its end (the trainer is deterministic: same params and seed, same result): it is recorded
      FAIL with a `REJECTED` user attribute, so no sampler takes it for an observation (a PRUNED trial
      without reports read as the worst loss to TPE, at the best point's params), is never trained,
      does not count, and the next try comes from random suggestions seeded by the search's seed;
    - finishes without asking when a finite space (integers, stepped floats, categories) has every
      point within the cost cap trained to its end, so resuming an exhausted study adds no rejected
      trials;
    - lets a point the sampler proposes again after the scheduler pruned it train to its end
      (`KEEP_KEY`, user attribute `REPEAT_OF_PRUNED`): a sampler that ignores pruned trials (GP) learns
      nothing from the cut and keeps proposing the same point, which a deterministic trainer would
      repeat up to the same rung every time. The repeat continues the pruned trial's last checkpoint
      (`REQUEUED_KEY`; checkpoints fall on the scheduler's rungs, `checkpoint_cadence` in
      automix/scheduling/_schedulers.py), so it trains only the rest: freeze-thaw, with the sampler
      deciding what to thaw. The pruned trial stays PRUNED; the repeat records what it trained
      (`trained_tokens`) beside where it ended (`tokens`), and gets the pruned trial's reports before
      its own first one as intermediate values (a crashed trial's re-run too): its whole curve.

    `space` maps param names to Optuna distributions; `metric`/`mode` are one name and "min"/"max",
    or lists of them for a multi-objective study. `cost(params)` gives a suggestion's training
    tokens; suggestions above `max_cost` are rejected. `target` is how many trained and running
    trials the study should reach, across all drivers.
    """

    def __init__(
        self,
        space: dict[str, BaseDistribution],
        metric: str | list[str],
        mode: str | list[str],
        sampler: BaseSampler | None = None,
        study_name: str | None = None,
        storage: BaseStorage | None = None,
        cost: Callable[[dict], float] | None = None,
        max_cost: float | None = None,
        target: int | None = None,
        seed: int = 0,
    ):
        # Ray's Searcher checks metric and mode: both strings, or lists of the same length.
        super().__init__(metric=metric, mode=mode)
        modes = mode if isinstance(mode, list) else [mode]
        self._space = dict(space)
        self._study_name = study_name or "optuna"
        # The random-retry study (`_retry_study`) must see the same trials: an in-memory study
        # needs a storage object both studies share.
        self._storage = storage if storage is not None else InMemoryStorage()
        self._study = optuna.create_study(
            storage=self._storage,
            sampler=sampler,
            pruner=NopPruner(),  # Ray's scheduler stops trials, never Optuna's pruner
            study_name=self._study_name,
            directions=["minimize" if m == "min" else "maximize" for m in modes],
            load_if_exists=True,
        )
        self._retry: optuna.Study | None = None
        self._seed = seed
        self._target = target
        self._cost = cost if max_cost is not None else None
        self._max_cost = max_cost
        self._trials: dict[str, optuna.Trial] = {}  # Ray trial id -> its Optuna trial
        self._done: set[str] = set()  # Ray trial ids already told to the study
        self._failed: dict[str, optuna.Trial] = {}  # Ray trial id -> Optuna trial awaiting its failure reason
        self._nodes: dict[str, dict] = {}  # Ray trial id -> node attributes last stored
        self._origins: dict[str, int] = {}  # Ray trial id -> the trial number whose checkpoint it continues
        self._points: float | None = None  # points of the space within the cost cap (inf: continuous or too many)

    @property
    def study(self) -> optuna.Study:
        """The Optuna study this searcher asks and tells."""
        return self._study

    def save(self, checkpoint_path: str) -> None:
        """Write the searcher's state for Tune's experiment checkpoint."""
        # cloudpickle: the cost function may be a closure or lambda, which plain pickle refuses.
        with open(checkpoint_path, "wb") as f:
            cloudpickle.dump(self.__dict__.copy(), f)

    def restore(self, checkpoint_path: str) -> None:
        """Read back a state written by `save`."""
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(cloudpickle.load(f))

    def _study_is_full(self) -> bool:
        """Whether the study (all drivers together) already has its trials trained or running."""
        if self._target is None:
            return False
        trials = self._study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        )
        return sum(REJECTED not in t.user_attrs for t in trials) >= self._target

    def suggest(self, trial_id: str) -> dict | str | None:
        """The config of a new trial (params and automix's tags), or FINISHED when none should start."""
        if trial_id not in self._trials:
            if self._study_is_full():
                return Searcher.FINISHED  # running trials finish; no new ones start
            trial = None if self._space_is_exhausted() else self._ask_untrained()
            if trial is None:
                return Searcher.FINISHED
            self._trials[trial_id] = trial
        trial = self._trials[trial_id]
        params = trial.params
        tags = {TRIAL_KEY: trial.number}
        if (origin := trial.user_attrs.get(REQUEUED_FROM)) is not None:
            tags[REQUEUED_KEY] = origin
        if (pruned := self._twin(params, TrialState.PRUNED)) is not None:
            trial.set_user_attr(REPEAT_OF_PRUNED, pruned)
            tags[KEEP_KEY] = True
            tags.setdefault(REQUEUED_KEY, pruned)  # freeze-thaw: continue where the scheduler stopped it
        if REQUEUED_KEY in tags:
            self._origins[trial_id] = tags[REQUEUED_KEY]
        return {**params, **tags}

    def _space_is_exhausted(self) -> bool:
        """Whether the space is finite and every point of it within the cost cap was trained to its end."""
        if self._points is None:
            self._points = _feasible_points(self._space, self._cost, self._max_cost)  # fixed: count it once
        if self._points == math.inf:
            return False
        trials = self._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        trained = {tuple(sorted(t.params.items())) for t in trials if REJECTED not in t.user_attrs}
        if len(trained) < self._points:  # trained points are all in the space and within the cap
            return False
        log.warning("all %d points of the space were trained to their end: the space is exhausted", self._points)
        return True

    def _ask_untrained(self) -> optuna.Trial | None:
        """Ask the study until a suggestion may be trained; None when the space is exhausted."""
        study, repeats = self._study, 0
        for _ in range(MAX_REJECTIONS):
            trial = study.ask(self._space)
            reason = self._rejection(trial)
            if reason is None:
                return trial
            trial.set_user_attr(REJECTED, reason)
            study.tell(trial, state=TrialState.FAIL)  # not an observation: every sampler skips FAIL
            repeats = repeats + 1 if reason.startswith(SAME_PARAMS) else 0
            if repeats >= MAX_REPEATS:
                log.warning("%d suggestions in a row were trained already: the space is exhausted", repeats)
                return None
            # A model-based sampler would propose the same point again: retry from random
            # suggestions, seeded by the search's seed and the rejected trial's number (one seed
            # per retry: trials running at once never draw the same point). A grid retries from
            # its own unvisited points: a random one would be off the grid.
            if not isinstance(self._study.sampler, GridSampler):
                seed = np.random.SeedSequence([self._seed, trial.number]).generate_state(1)[0]
                study = self._retry_study(int(seed))
        raise RuntimeError(f"{MAX_REJECTIONS} suggestions in a row exceeded max_train_tokens; widen it")

    def _retry_study(self, seed: int) -> optuna.Study:
        """The same study, loaded a second time with a random sampler seeded by `seed`.

        Loaded once and re-seeded by giving it a new sampler: a second load per retry would read
        every trial of the study from the storage again, for each rejected suggestion.
        """
        sampler = RandomSampler(seed=seed)
        if self._retry is None:
            self._retry = optuna.load_study(
                study_name=self._study_name, storage=self._storage, sampler=sampler, pruner=NopPruner()
            )
        else:
            self._retry.sampler = sampler
        return self._retry

    def _rejection(self, trial: optuna.Trial) -> str | None:
        """Why a suggestion must not be trained: over the cost cap, or already trained to its end."""
        params = trial.params
        if self._cost is not None:
            cost = self._cost(params)
            trial.set_constraint("train_tokens", cost - self._max_cost)
            if cost > self._max_cost:
                return f"train_tokens {cost:,.0f} > max {self._max_cost:,.0f}"
        if (done := self._twin(params, TrialState.COMPLETE)) is not None:
            return f"{SAME_PARAMS} {done}, trained to its end: same seed, same result"
        return None

    def _twin(self, params: dict, state: TrialState) -> int | None:
        """The number of a trained trial in `state` with exactly these params, if any."""
        for trial in self._study.get_trials(deepcopy=False, states=(state,)):
            if REJECTED not in trial.user_attrs and trial.params == params:
                return trial.number
        return None

    def record_failure(self, trial_id: str, reason: str | None) -> None:
        """Close a failed trial as FAIL with why it failed (called by `FailureCallback`)."""
        trial = self._failed.pop(trial_id, None)
        if trial is None:
            return
        if reason:
            trial.set_user_attr(FAIL_REASON, reason[:1000])
        self._study.tell(trial, state=TrialState.FAIL)

    def flush_failures(self) -> None:
        """FAIL every failed trial still waiting for a reason (the search is ending)."""
        for trial_id in list(self._failed):
            self.record_failure(trial_id, None)

    def _record_node(self, trial_id: str, result: dict) -> None:
        node = {k: str(result[k]) for k in NODE_KEYS if k in result}
        if node and trial_id in self._trials and self._nodes.get(trial_id) != node:
            self._nodes[trial_id] = node
            for key, value in node.items():
                self._trials[trial_id].set_user_attr(key, value)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Store the trial's node and its metric as an intermediate value at step = tokens."""
        if trial_id in self._done:
            return
        self._record_node(trial_id, result)
        if isinstance(self.metric, list) or result.get(FINAL_KEY) or trial_id not in self._trials:
            return  # multi-objective studies keep no intermediate values; the final one is told
        value, tokens = result.get(self.metric), result.get("tokens")
        if value is not None and tokens is not None and math.isfinite(value):
            self._trials[trial_id].report(float(value), step=int(tokens))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell the study how the trial ended: COMPLETE, PRUNED, or FAIL (after its reason, on error)."""
        if trial_id in self._done or trial_id not in self._trials:
            return
        trial = self._trials[trial_id]
        result = result or {}
        for key in COST_KEYS:
            if key in result:
                trial.set_user_attr(key, float(result[key]))
        if finished(result):
            # Every final metric (target_acc, aux_val_loss, ...), not only the searched one.
            finals = {k: float(v) for k, v in trial_metrics(result).items() if isinstance(v, int | float)}
            trial.set_user_attr(FINAL_METRICS, {k: v for k, v in finals.items() if math.isfinite(v)})
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        state, reason = final_state(result, metrics)
        if error:
            # Ray tells the searcher before its callbacks, which know the exception: wait for it.
            self._failed[trial_id] = trial
        else:
            # A result the scheduler stopped the trial on never reached on_trial_result: record it
            # (Optuna takes the last intermediate value as a pruned trial's value).
            self.on_trial_result(trial_id, result)
            self._prepend_continued(trial, self._origins.get(trial_id))
            if state == "FAIL":
                trial.set_user_attr(FAIL_REASON, reason)
                self._study.tell(trial, state=TrialState.FAIL)
            elif state == "COMPLETE":
                values = [result[m] for m in metrics]
                self._study.tell(trial, values if len(values) > 1 else values[0])
            else:
                self._study.tell(trial, state=TrialState.PRUNED)
        self._done.add(trial_id)

    def _prepend_continued(self, trial: optuna.Trial, origin: int | None) -> None:
        """Give a trial that continued trial `origin`'s checkpoint (a crashed trial it re-runs, a
        pruned one proposed again) `origin`'s reports before its own first one: its whole curve."""
        if origin is None or isinstance(self.metric, list):
            return
        by_number = {t.number: t for t in self._study.get_trials(deepcopy=False)}
        own, earlier = by_number[trial.number].intermediate_values, by_number[origin].intermediate_values
        for step, value in sorted(earlier_reports(own, earlier).items()):
            trial.report(value, step)


def earlier_reports(own: dict[int, float], origin: dict[int, float]) -> dict[int, float]:
    """The reports (step -> value) of the run a trial continued that come before the trial's own
    first one: what one uninterrupted run would have reported there. A trial that started afresh
    reported them itself (none come before its first)."""
    first = min(own, default=math.inf)
    return {step: value for step, value in origin.items() if step < first}


def _feasible_points(space: dict[str, BaseDistribution], cost, max_cost) -> float:
    """How many points of a finite space are within the cost cap; inf if the space is continuous
    or has more than MAX_POINTS points (then exhaustion is left to MAX_REPEATS)."""
    try:
        axes = grid_values(SearchSpace(space))
    except ConfigError:  # a continuous range
        return math.inf
    if math.prod(len(v) for v in axes.values()) > MAX_POINTS:
        return math.inf
    points = (dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values()))
    return sum(1 for p in points if cost is None or cost(p) <= max_cost)
