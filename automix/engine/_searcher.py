"""A thin adapter over Ray Tune's `OptunaSearch` so the Optuna study tells the truth.

Stock OptunaSearch records a trial stopped by the scheduler as COMPLETE with its partial loss,
so the sampler mistakes an early estimate for a final value; it also reports intermediate values
at Ray's iteration count. This adapter:
- marks a trial COMPLETE only if it trained to its end (its objective returned: the final result
  carries `FINAL_KEY`; or its last report said `progress` 1.0), PRUNED if the scheduler stopped it
  earlier (its intermediate values stay), FAIL if it raised or its value is not finite;
- reports intermediate values at step = tokens, the axis schedulers compare trials on;
- tags each suggestion with the Optuna trial number (`TRIAL_KEY`) so trial dirs and MLflow runs
  carry the same number as the study, and a re-queued trial with the crashed one's (`REQUEUED_KEY`);
- stores each trial's cost (`tokens`, `wall_time_s`) and, from its first result on, the Ray node
  running it (`node_ip`, `node_id`; updated if a retry moves it) as Optuna user attributes;
- rejects, before training, a suggestion over the per-trial cost cap (it gets a positive
  `train_tokens` constraint, `Trial.set_constraint`, so constraint-aware samplers learn to avoid
  the region) or with the params of a trial already trained to its end (the trainer is
  deterministic: same params and seed, same result): it is recorded PRUNED with a `rejected` user
  attribute, is never trained, does not count, and the next try comes from random suggestions;
- lets a point the sampler proposes again after the scheduler pruned it train to its end
  (`KEEP_KEY`, user attribute `repeat_of_pruned`): a sampler that ignores pruned trials (GP) learns
  nothing from the cut and keeps proposing the same point, which a deterministic trainer would
  repeat up to the same rung every time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from optuna.samplers import RandomSampler
from optuna.trial import TrialState
from ray import cloudpickle
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from automix.protocol import (
    COST_KEYS,
    FINAL_KEY,
    KEEP_KEY,
    NODE_KEYS,
    REQUEUED_KEY,
    TRIAL_KEY,
    final_state,
    finished,
    trial_metrics,
)

MAX_REJECTIONS = 1000
MAX_REPEATS = 100  # suggestions in a row that were all trained already: the space is exhausted
SAME_PARAMS = "same params as trial"

log = logging.getLogger(__name__)


class StudySearcher(OptunaSearch):
    """OptunaSearch with truthful trial states, token steps, trial numbers and a cost cap (module doc).

    `cost(params)` gives a suggestion's training tokens; suggestions above `max_cost` are rejected.
    """

    def __init__(
        self,
        *args,
        cost: Callable[[dict], float] | None = None,
        max_cost: float | None = None,
        target: int | None = None,
        **kw,
    ):
        super().__init__(*args, **kw)
        self._target = target  # trained + running trials the study should reach, across all drivers
        self._cost = cost if max_cost is not None else None
        self._max_cost = max_cost
        self._failed: dict = {}  # Ray trial id -> Optuna trial awaiting its failure reason
        self._nodes: dict[str, dict] = {}  # Ray trial id -> node attributes last stored

    def save(self, checkpoint_path: str) -> None:
        # cloudpickle: the cost function may be a closure or lambda, which plain pickle refuses.
        with open(checkpoint_path, "wb") as f:
            cloudpickle.dump(self.__dict__.copy(), f)

    def _study_is_full(self) -> bool:
        """Whether the study (all drivers together) already has its trials trained or running."""
        if self._target is None:
            return False
        trials = self._ot_study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        )
        return sum("rejected" not in t.user_attrs for t in trials) >= self._target

    def suggest(self, trial_id: str) -> dict | str | None:
        if trial_id not in self._ot_trials and self._study_is_full():
            return Searcher.FINISHED  # running trials finish; no new ones start
        sampler, repeats = self._ot_study.sampler, 0
        try:
            for attempt in range(MAX_REJECTIONS):
                params = super().suggest(trial_id)
                if params is None or (reason := self._rejection(trial_id, params)) is None:
                    break
                ot_trial = self._ot_trials.pop(trial_id)
                ot_trial.set_user_attr("rejected", reason)
                self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
                repeats = repeats + 1 if reason.startswith(SAME_PARAMS) else 0
                if repeats >= MAX_REPEATS:
                    log.warning("%d suggestions in a row were trained already: the space is exhausted", repeats)
                    return Searcher.FINISHED
                # A model-based sampler that ignores pruned trials (GP) would propose the same point
                # again: retry from random suggestions, seeded by the trial count for reproducibility.
                self._ot_study.sampler = RandomSampler(seed=len(self._ot_study.trials) + attempt)
            else:
                raise RuntimeError(f"{MAX_REJECTIONS} suggestions in a row exceeded max_train_tokens; widen it")
        finally:
            self._ot_study.sampler = sampler
        if params is None:
            return None
        ot_trial = self._ot_trials[trial_id]
        tags = {TRIAL_KEY: ot_trial.number}
        if (origin := ot_trial.user_attrs.get("requeued_from")) is not None:
            tags[REQUEUED_KEY] = origin
        if (pruned := self._twin(params, TrialState.PRUNED)) is not None:
            ot_trial.set_user_attr("repeat_of_pruned", pruned)
            tags[KEEP_KEY] = True
        return {**params, **tags}

    def _rejection(self, trial_id: str, params: dict) -> str | None:
        """Why a suggestion must not be trained: over the cost cap, or already trained to its end."""
        if self._cost is not None:
            cost = self._cost(params)
            self._ot_trials[trial_id].set_constraint("train_tokens", cost - self._max_cost)
            if cost > self._max_cost:
                return f"train_tokens {cost:,.0f} > max {self._max_cost:,.0f}"
        if (done := self._twin(params, TrialState.COMPLETE)) is not None:
            return f"{SAME_PARAMS} {done}, trained to its end: same seed, same result"
        return None

    def _twin(self, params: dict, state: TrialState) -> int | None:
        """The number of a trained trial in `state` with exactly these params, if any."""
        for trial in self._ot_study.get_trials(deepcopy=False, states=(state,)):
            if "rejected" not in trial.user_attrs and trial.params == params:
                return trial.number
        return None

    def record_failure(self, trial_id: str, reason: str | None) -> None:
        """Close a failed trial as FAIL with why it failed (called by `FailureCallback`)."""
        ot_trial = self._failed.pop(trial_id, None)
        if ot_trial is None:
            return
        if reason:
            ot_trial.set_user_attr("fail_reason", reason[:1000])
        self._ot_study.tell(ot_trial, state=TrialState.FAIL)

    def flush_failures(self) -> None:
        """FAIL every failed trial still waiting for a reason (the search is ending)."""
        for trial_id in list(self._failed):
            self.record_failure(trial_id, None)

    def _record_node(self, trial_id: str, result: dict) -> None:
        node = {k: str(result[k]) for k in NODE_KEYS if k in result}
        if node and trial_id in self._ot_trials and self._nodes.get(trial_id) != node:
            self._nodes[trial_id] = node
            for key, value in node.items():
                self._ot_trials[trial_id].set_user_attr(key, value)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._completed_trials:
            self._record_node(trial_id, result)
        if isinstance(self.metric, list) or trial_id in self._completed_trials or result.get(FINAL_KEY):
            return  # multi-objective studies keep no intermediate values; the final one is told
        value, tokens = result.get(self.metric), result.get("tokens")
        if value is not None and tokens is not None and math.isfinite(value):
            self._ot_trials[trial_id].report(float(value), step=int(tokens))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        result = result or {}
        for key in COST_KEYS:
            if key in result:
                ot_trial.set_user_attr(key, float(result[key]))
        if finished(result):
            # Every final metric (target_acc, aux_val_loss, ...), not only the searched one.
            finals = {k: float(v) for k, v in trial_metrics(result).items() if isinstance(v, int | float)}
            ot_trial.set_user_attr("final_metrics", {k: v for k, v in finals.items() if math.isfinite(v)})
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        state, reason = final_state(result, metrics)
        if not error:
            # A result the scheduler stopped the trial on never reached on_trial_result: record it
            # (Optuna takes the last intermediate value as a pruned trial's value).
            self.on_trial_result(trial_id, result)
        if error:
            # Ray tells the searcher before its callbacks, which know the exception: wait for it.
            self._failed[trial_id] = ot_trial
        elif state == "FAIL":
            ot_trial.set_user_attr("fail_reason", reason)
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        elif state == "COMPLETE":
            values = [result[m] for m in metrics]
            self._ot_study.tell(ot_trial, values if len(values) > 1 else values[0])
        else:
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)
