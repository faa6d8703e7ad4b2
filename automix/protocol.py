"""The trial protocol: what a trial reports, how it ended, and the keys automix adds to it.

Every layer speaks it (the worker-side trainable, the searcher, the MLflow callback, the console,
the analyses), so it imports nothing but the standard library: no Ray, torch, MLflow or Optuna.
docs/design.md ("One trial, end to end") shows where each key is written and read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# Keys automix adds to a trial's config; `user_params` strips them.
TRIAL_KEY = "__automix_trial"
# The earlier trial whose checkpoint this one continues: a crashed one it re-runs, or a pruned one
# whose point the sampler proposed again (the trainer resumes where the scheduler stopped it).
REQUEUED_KEY = "__automix_requeued_from"
KEEP_KEY = "__automix_keep"  # a point proposed again after it was pruned: schedulers let it finish
# A key of the trial's final result: the objective returned (the trial was not stopped).
FINAL_KEY = "automix_final"

# Keys of a report (the metrics dict an objective passes to `report`).
TOKENS = "tokens"  # the schedulers' time axis: tokens trained so far
PROGRESS = "progress"  # share of the planned training done; 1.0 means trained to the end
DECAYING = "decaying"  # the lr has started to decay: the loss is not comparable across trials
TRAINED = "trained_tokens"  # tokens this run trained: below `tokens` when it continued a checkpoint

# Optuna user attributes automix writes on a trial.
COST_KEYS = (TOKENS, TRAINED, "wall_time_s")
NODE_KEYS = ("node_ip", "node_id")  # where a trial runs: Ray's node_ip, automix's node_id
REJECTED = "rejected"  # a suggestion recorded FAIL and never trained (why, as text): no observation
REQUEUED_FROM = "requeued_from"  # the number of the crashed trial a re-queued one re-runs
REPEAT_OF_PRUNED = "repeat_of_pruned"  # a pruned point proposed again: continued from its checkpoint to its end
FAIL_REASON = "fail_reason"
FINAL_METRICS = "final_metrics"  # every finite metric of a finished trial's last report

# Ray's bookkeeping in a result, which is not the objective's.
_RAY_KEYS = frozenset(
    {
        "time_this_iter_s",
        "time_total_s",
        "timestamp",
        "training_iteration",
        "pid",
        "done",
        "iterations_since_restore",
        "time_since_restore",
        "date",
        "hostname",
        FINAL_KEY,
        *NODE_KEYS,
    }
)


def trained_tokens(record: dict[str, Any]) -> float:
    """Tokens a trial itself trained (a result or its user attributes): `trained_tokens`, else
    `tokens` (an objective that never continues a checkpoint need not report the former)."""
    return float(record.get(TRAINED, record.get(TOKENS, 0.0)))


def user_params(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's searched parameters: its config without the keys automix adds."""
    return {k: v for k, v in config.items() if not k.startswith("__automix_")}


def trial_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """Drop Ray's bookkeeping (time_this_iter_s, pid, ...) and keep the objective's metrics."""
    return {k: v for k, v in result.items() if k not in _RAY_KEYS}


def finished(result: dict[str, Any]) -> bool:
    """Whether a trial trained to its end: its objective returned (`FINAL_KEY`), or its last report
    says `progress` 1.0 (a scheduler that stops a trial at that very report, e.g. ASHA at `max_t`,
    keeps the objective's return from arriving, but the training was complete)."""
    return bool(result.get(FINAL_KEY)) or float(result.get(PROGRESS, 0.0)) >= 1.0


def final_state(result: dict[str, Any], metrics: list[str]) -> tuple[str, str | None]:
    """How a trial that ended without raising ends, and why if it failed.

    COMPLETE when it trained to its end (`finished`) with finite metrics, FAIL when they are not
    finite, PRUNED when the scheduler stopped it earlier. One rule for the study, MLflow and the console.
    """
    if not finished(result):
        return "PRUNED", None
    values = [result.get(m) for m in metrics]
    if all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        return "COMPLETE", None
    return "FAIL", f"non-finite {metrics}: {values}"


def error_reason(error_file: str | Path | None) -> str | None:
    """The last line of a failed trial's traceback file: the exception and its message."""
    try:
        lines = [line for line in Path(error_file).read_text().splitlines() if line.strip()] if error_file else []
    except OSError:
        return None
    return lines[-1].strip() if lines else None
