"""Re-create a trial from its MLflow run: the trainer config it recorded, on the data it recorded.

`automix train --from-run RUN_ID` reads the run (automix/tracking/_trial.py `read_trial_run`),
rebuilds the trainer config from its `config.*` params (`trial_config`), refuses corpora whose
content hash is not the one the run's dataset inputs recorded (`check_data`), trains, and compares
every logged value with the new run's (`compare`): on CPU the trainer is deterministic, so they
are equal to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config import TrainConfig
from trainer.documents import content_key
from trainer.errors import CorpusError


def trial_config(recorded: dict[str, Any], out_dir: str | Path | None = None) -> TrainConfig:
    """The trainer config a run recorded (nested, values as logged), trained from its start.

    Args:
        recorded: the run's effective config (`TrialRun.config`); its strings are typed by the
            config's own fields.
        out_dir: where the checkpoint goes; None keeps the trial's own folder as recorded.

    Returns:
        The config, without `resume_from`: a trial that continued a pruned one's checkpoint is
        re-created from scratch (the same losses: resuming is bit-exact).
    """
    config = TrainConfig.model_validate(recorded)
    updates: dict[str, Any] = {"resume_from": None}
    if out_dir is not None:
        updates["out_dir"] = str(out_dir)
    return config.model_copy(update=updates)


def check_data(config: TrainConfig, datasets: list[dict[str, str]]) -> None:
    """Refuse (CorpusError, one line) a corpus whose content is not what the run recorded.

    Args:
        config: the re-created trial's config (its sources are the recorded ones).
        datasets: the run's dataset inputs: role, source and digest (content hash) of each.
    """
    sources = {"target": config.data.target, "auxiliary": config.data.auxiliary}
    sources |= {"target_valid": config.data.target_valid, "aux_valid": config.data.aux_valid}
    for dataset in datasets:
        source = sources.get(dataset["role"])
        if source is None:
            continue
        now = content_key(source, config.data.hf_max_documents)
        if now != dataset["digest"]:
            raise CorpusError(
                f"{dataset['role']} corpus {source} changed since the run: content hash {now}, the run's "
                f"{dataset['digest']}: restore those files to re-create the trial"
            )


@dataclass(frozen=True)
class Comparison:
    """A re-run's values against the run's, at each step (tokens) the run logged."""

    compared: int  # values compared
    differences: list[tuple[str, int, float, float | None]]  # metric, step, the run's value, the re-run's

    @property
    def identical(self) -> bool:
        """Every compared value is equal, bit for bit."""
        return self.compared > 0 and not self.differences


def compare(history: list[dict[str, float]], logged: dict[str, dict[int, float]]) -> Comparison:
    """Compare a re-run's evaluations with what the run logged.

    Args:
        history: the re-run's evaluations (`RunResult.history`), each with `tokens`.
        logged: per metric, the run's values by step (tokens); a pruned run's stop early, a
            continued run's start late, and only those steps are compared.

    Returns:
        How many values were compared, and those that differ (None: the re-run has no such value).
    """
    by_tokens = {int(h["tokens"]): h for h in history}
    compared, differences = 0, []
    for metric, values in logged.items():
        for step, value in sorted(values.items()):
            now = by_tokens.get(step, {}).get(metric)
            compared += 1
            if now is None or float(now) != value:
                differences.append((metric, step, value, now))
    return Comparison(compared, differences)
