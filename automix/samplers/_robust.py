"""A model-based sampler that sees diverged and failed trials as bad, not as the whole story.

A Gaussian process standardizes the losses it is given. One diverged run (loss ≈ log of the
vocabulary, 7 against 1.3–2 for the rest) then sets the scale: the differences that matter near
the optimum shrink to noise, and the GP spends its trials mapping the cliff. A failed trial (a NaN
loss is FAIL in automix) is worse still: the GP never learns that its region is bad. `RobustSampler`
shows the wrapped sampler a copy of the study with both tamed (BENCHMARKS.md "Samplers across surfaces").
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState, create_trial

from automix.protocol import REJECTED


class RobustSampler(BaseSampler):
    """Wraps a single-objective sampler, showing it losses clipped at their median and failures as no better.

    The default sampler, `robustgp`, is `RobustSampler(optuna.samplers.GPSampler(seed=seed))`. The
    wrapped sampler suggests on an in-memory copy of the study in which losses above the median of
    the finished ones are clipped to it, failed trials count as finished at the median, and
    suggestions the searcher rejected (`automix.protocol.REJECTED`) are left out; the study itself
    keeps the true values. Running trials keep their params, so the wrapped sampler's handling of
    pending points holds; everything else (the search space, the start-up, ask/tell) is its own.
    Clipping at Tukey's fence or at median + 3·MAD was tried first and did worse on the cliff
    surface (BENCHMARKS.md "Samplers across surfaces"). A multi-objective study,
    or a suggestion without a relative search space, goes to the wrapped sampler unchanged.

    Args:
        sampler: The wrapped single-objective sampler (e.g. Optuna's `GPSampler`). Its seed is the
            only randomness: `RobustSampler` adds none.

    Example:
        ::

            import optuna
            from automix.samplers import RobustSampler

            def objective(trial):
                x = trial.suggest_float("x", 0, 1)
                return float("nan") if x > 0.5 else (x - 0.45) ** 2  # NaN: the trial FAILs

            study = optuna.create_study(sampler=RobustSampler(optuna.samplers.GPSampler(seed=0)))
            study.optimize(objective, n_trials=15)
    """

    def __init__(self, sampler: BaseSampler):
        self._sampler = sampler

    def reseed_rng(self) -> None:
        """Reseed the wrapped sampler."""
        self._sampler.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        """The wrapped sampler's relative search space."""
        return self._sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space) -> dict:
        """The wrapped sampler's suggestion, made on the study with outliers clipped and failures counted."""
        if not search_space or len(study.directions) != 1:
            return self._sampler.sample_relative(study, trial, search_space)
        shadow, current = self._shadow(study, trial)
        return self._sampler.sample_relative(shadow, current, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        """The wrapped sampler's independent sample (its start-up design)."""
        return self._sampler.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        """Let the wrapped sampler see the trial start."""
        self._sampler.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        """Let the wrapped sampler see the trial end."""
        self._sampler.after_trial(study, trial, state, values)

    def _shadow(self, study: optuna.Study, trial: FrozenTrial) -> tuple[optuna.Study, FrozenTrial]:
        """An in-memory copy of `study` with clipped and imputed losses, and this trial in it, RUNNING."""
        # A rejected suggestion never trained: not an observation in any state it is recorded with.
        trials = [t for t in study.get_trials(deepcopy=False) if REJECTED not in t.user_attrs]
        finished = [t for t in trials if t.state == TrialState.COMPLETE]
        sign = 1.0 if study.direction == StudyDirection.MINIMIZE else -1.0
        # The median, not Tukey's fence (Q3 + 1.5·IQR): when over a quarter of the trials diverged
        # the fence is itself a diverged loss and clips nothing (BENCHMARKS.md "Samplers across surfaces").
        ceiling = sign * float(np.median([sign * t.value for t in finished])) if len(finished) >= 4 else None
        shadow = optuna.create_study(direction=study.direction)
        copies = []
        for t in trials:
            if t.number == trial.number:
                continue
            if t.state == TrialState.COMPLETE:
                value = t.value if ceiling is None else sign * min(sign * t.value, sign * ceiling)
                copies.append(create_trial(params=t.params, distributions=t.distributions, value=value))
            elif t.state == TrialState.FAIL and ceiling is not None and t.params:
                copies.append(create_trial(params=t.params, distributions=t.distributions, value=ceiling))
            elif t.state == TrialState.RUNNING and t.params:
                copies.append(create_trial(state=TrialState.RUNNING, params=t.params, distributions=t.distributions))
        shadow.add_trials(copies)
        shadow.ask()
        return shadow, shadow.get_trials(deepcopy=False)[-1]
