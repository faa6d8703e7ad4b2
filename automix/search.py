"""One entry point, `search(...)`: Ray Tune runs the trials, Optuna suggests them, ASHA stops them.

config → space → sampler → searcher (Optuna study in persistent storage) → Tuner → trial
(objective → trainer) → metrics → MLflow. The Optuna study is the source of truth: every trial
lands there, and `best.json`, the trials table and the reports are read back from it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import ray
from pydantic import ValidationError
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from automix.config import ConfigError, SearchConfig, StudyConfig, format_validation_error
from automix.objective import Objective, Reporter, TrainerObjective, cpu_threads
from automix.progress import ProgressCallback
from automix.samplers import make_sampler
from automix.searcher import FINAL_KEY, TRIAL_KEY, StudySearcher
from automix.space import SearchSpace, load_space
from automix.study import open_study_storage, prepare_study
from automix.tracking import MlflowTrialCallback, Tracker, default_tracking_uri, flatten
from trainer.data import CorpusError, prepare

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """What a search leaves behind; `study` is the live Optuna study."""

    study_name: str
    storage_url: str
    work_dir: Path
    best_params: dict[str, Any]
    best_value: float | None
    trials: pd.DataFrame
    study: optuna.Study
    mlflow_parent_run_id: str | None
    mlflow_run_ids: dict[int, str] = field(default_factory=dict)


def make_trainable(objective: Objective):
    """Wrap `objective(params, report)` as a Ray Tune function trainable."""

    def trainable(config: dict[str, Any]) -> None:
        params = {k: v for k, v in config.items() if k != TRIAL_KEY}
        reporter = Reporter(config.get(TRIAL_KEY), sink=tune.report)
        final = objective(params, reporter)
        # The final result carries FINAL_KEY: how the searcher tells "finished" from "stopped".
        tune.report({**reporter.last, **final, FINAL_KEY: 1.0})

    return trainable


def _scheduler(settings: SearchConfig, max_tokens: int, eval_every: int):
    if settings.scheduler == "none":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="tokens",
        metric=settings.metric,
        mode=settings.mode,
        max_t=max_tokens,
        grace_period=settings.grace_tokens or 2 * eval_every,
        reduction_factor=settings.reduction_factor,
    )


def _max_train_tokens(space: SearchSpace, study: StudyConfig) -> int:
    """The largest T any trial of `space` can ask for: the worst case the corpora must supply."""
    corner = {}
    for name, d in space.distributions.items():
        if name in ("epochs", "mix_ratio", "unique_tokens", "budget.train_tokens"):
            corner[name] = max(d.choices) if hasattr(d, "choices") else d.high
    return space.apply(corner, study.base_train_config()).budget.total_tokens


def _ray_init(work_dir: Path, address: str | None) -> bool:
    """Start (or join) Ray; returns whether this call started it."""
    if ray.is_initialized():
        return False
    temp_dir = work_dir / "ray_tmp"
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    # Ray's unix sockets live under its temp dir; their paths must stay under 107 bytes.
    if address is None and len(str(temp_dir)) <= 40:
        kwargs["_temp_dir"] = str(temp_dir)
    ray.init(address=address, **kwargs)
    return True


@dataclass
class _Plan:
    """What a search runs: the objective, its space, and the scheduler's token axis."""

    objective: Objective
    space: SearchSpace
    max_tokens: int
    eval_every: int


def _plan(objective, space, config: StudyConfig | None, settings: SearchConfig, work: Path) -> _Plan:
    if config is None:
        if space is None:
            raise ConfigError(
                "a custom objective needs a search space: pass space=SearchSpace(...) or a YAML path"
            )
        space = space if isinstance(space, SearchSpace) else load_space(space)
        return _Plan(objective, space, 10**15, settings.grace_tokens or 1)
    base = config.base_train_config()
    space = space if isinstance(space, SearchSpace) else load_space(space or settings.space, base)
    max_tokens = _max_train_tokens(space, config)
    # Fail before any trial: corpora readable, U available, auxiliary enough for the largest r·T.
    worst = base.budget.model_copy(
        update={"mode": "fixed_tokens", "train_tokens": max_tokens, "mix_ratio": _max_mix(space, base)}
    )
    prepare(base.model_copy(update={"budget": worst}))
    threads = cpu_threads(settings.cpus_per_trial)
    return _Plan(
        TrainerObjective(base, space, work / "trials", threads), space, max_tokens, config.eval_every_tokens
    )


def search(
    objective: StudyConfig | Objective,
    space: SearchSpace | str | Path | None = None,
    *,
    study: str | None = None,
    work_dir: str | Path | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    address: str | None = None,
    resume: bool = False,
    verbose: bool = True,
    **settings: Any,
) -> SearchResult:
    """Run a search and return its result.

    `objective` is a `StudyConfig` (the built-in trainer objective) or a callable
    `objective(params, report) -> dict`. `space` defaults to the config's `search.space`.
    `settings` override `SearchConfig` fields (sampler, n_trials, concurrency, scheduler, ...).
    `storage` is an Optuna storage URL (default: sqlite in the work directory), `tracking_uri` an
    MLflow URI (default: sqlite in the work directory). `resume=True` continues the study.
    Bad input raises `ConfigError`/`CorpusError` before anything is written.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    config = objective if isinstance(objective, StudyConfig) else None
    try:
        search_cfg = SearchConfig.model_validate(
            {**(config.search.model_dump() if config else {}), **settings}
        )
    except ValidationError as e:
        raise ConfigError(f"search settings: {format_validation_error(e)}") from None
    study_name = study or (config.study if config else "automix")
    work = (
        Path(work_dir).resolve()
        if work_dir
        else (config.work_path if config else Path("runs", study_name).resolve())
    )
    created = not work.exists()
    try:
        plan = _plan(objective, space, config, search_cfg, work)
        storage_url = storage or f"sqlite:///{work / 'optuna.db'}"
        work.mkdir(parents=True, exist_ok=True)
        ot_storage = open_study_storage(storage_url)
        n_remaining = prepare_study(ot_storage, study_name, search_cfg, resume)
    except (ConfigError, CorpusError):
        if created:
            shutil.rmtree(work, ignore_errors=True)  # nothing half-written
        raise

    tracking_uri = tracking_uri or (config.tracking.uri if config else None) or default_tracking_uri(work)
    experiment = (config.tracking.experiment if config else None) or study_name
    tracker = Tracker(tracking_uri, experiment, work / "mlartifacts")
    tags = {"sampler": search_cfg.sampler, "scheduler": search_cfg.scheduler, "study": study_name}
    params = flatten(config.model_dump()) if config else {"space": plan.space.source}
    parent_id = tracker.start_parent(
        f"search-{study_name}", {**params, **flatten(search_cfg.model_dump(), "search.")}, tags
    )
    if config is not None:
        tracker.log_dict(parent_id, config.model_dump(), "config.json")
    mlflow_cb = MlflowTrialCallback(tracker, tags)

    searcher = StudySearcher(
        space=plan.space.distributions,
        metric=search_cfg.metric,
        mode=search_cfg.mode,
        sampler=make_sampler(search_cfg.sampler, plan.space, search_cfg.seed),
        study_name=study_name,
        storage=ot_storage,
    )
    started_ray = _ray_init(work, address)
    status = "FAILED"
    try:
        if n_remaining > 0:
            resources = {"cpu": search_cfg.cpus_per_trial, "gpu": search_cfg.gpus_per_trial}
            tuner = tune.Tuner(
                tune.with_resources(make_trainable(plan.objective), resources),
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    scheduler=_scheduler(search_cfg, plan.max_tokens, plan.eval_every),
                    num_samples=n_remaining,
                    max_concurrent_trials=search_cfg.concurrency,
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=study_name,
                    storage_path=str(work / "ray"),
                    callbacks=[mlflow_cb, ProgressCallback(search_cfg.metric, n_remaining, verbose)],
                    verbose=0,
                ),
            )
            tuner.fit()
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if started_ray:
            ray.shutdown()
        result = _collect(study_name, storage_url, ot_storage, work, search_cfg, parent_id, mlflow_cb.run_ids)
        _finish_tracking(tracker, parent_id, result, status)
    return result


def _max_mix(space: SearchSpace, base) -> float:
    d = space.distributions.get("mix_ratio")
    if d is None:
        return float(space.fixed.get("mix_ratio", base.budget.mix_ratio))
    return max(d.choices) if hasattr(d, "choices") else d.high


def _collect(study_name, storage_url, ot_storage, work, search_cfg, parent_id, run_ids) -> SearchResult:
    """Read the study back (the source of truth) and write best.json."""
    ot_study = optuna.load_study(study_name=study_name, storage=ot_storage)
    completed = [t for t in ot_study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = None
    if completed:
        best = (
            min(completed, key=lambda t: t.value)
            if search_cfg.mode == "min"
            else max(completed, key=lambda t: t.value)
        )
    best_json = {
        "study": study_name,
        "storage": storage_url,
        "metric": search_cfg.metric,
        "mode": search_cfg.mode,
        "best_trial": best.number if best else None,
        "best_value": best.value if best else None,
        "best_params": best.params if best else {},
        "best_attrs": best.user_attrs if best else {},
        "n_trials": len(ot_study.trials),
        "states": pd.Series([t.state.name for t in ot_study.trials]).value_counts().to_dict(),
        "mlflow_parent_run_id": parent_id,
    }
    tmp = work / "best.json.tmp"
    tmp.write_text(json.dumps(best_json, indent=2))
    os.replace(tmp, work / "best.json")
    return SearchResult(
        study_name=study_name,
        storage_url=storage_url,
        work_dir=work,
        best_params=best_json["best_params"],
        best_value=best_json["best_value"],
        trials=ot_study.trials_dataframe(),
        study=ot_study,
        mlflow_parent_run_id=parent_id,
        mlflow_run_ids=dict(run_ids),
    )


def _finish_tracking(tracker: Tracker, parent_id: str, result: SearchResult, status: str) -> None:
    try:
        if result.best_value is not None:
            tracker.log_metrics(
                parent_id, {f"best_{k}": v for k, v in {"value": result.best_value}.items()}, 0
            )
        tracker.log_artifact(parent_id, result.work_dir / "best.json")
        tracker.end(
            parent_id,
            status,
            tags={"best_trial": str(json.loads((result.work_dir / "best.json").read_text())["best_trial"])},
        )
    except Exception as e:  # noqa: BLE001 - tracking never fails a finished search
        log.warning("MLflow: could not close the parent run: %s", e)
