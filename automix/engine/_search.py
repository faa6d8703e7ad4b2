"""One entry point, `search(...)`: Ray Tune runs the trials, Optuna suggests them, a scheduler stops them.

config → space → sampler → searcher (Optuna study in persistent storage) → Tuner → trial
(objective → trainer) → metrics → MLflow. The Optuna study is the source of truth: every trial
lands there, and `best.json`, the trials table and the reports are read back from it.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import ray
from pydantic import ValidationError
from ray import tune

from automix.config._space import SearchSpace, load_space
from automix.config._study import ConfigError, SearchConfig, StudyConfig, format_validation_error
from automix.engine._callbacks import FailureCallback, MlflowTrialCallback
from automix.engine._progress import ProgressCallback
from automix.engine._samplers import grid_size, make_sampler
from automix.engine._schedulers import TokenBudget, make_scheduler
from automix.engine._searcher import StudySearcher
from automix.study._prepare import check_study, prepare_study
from automix.study._results import SearchResult, collect
from automix.study._storage import open_storage
from automix.tracking._store import Tracker, check_tracking_uri, default_tracking_uri, flatten
from automix.trial._objective import Objective, TrainerObjective, cpu_threads
from automix.trial._trainable import make_trainable
from trainer.config import TrainConfig
from trainer.data import CorpusError, prepare

log = logging.getLogger(__name__)


@dataclass
class _Plan:
    """What a search runs: the objective, its space, its per-trial cost and the token axis."""

    objective: Objective
    space: SearchSpace
    max_tokens: int
    eval_every: int
    cost: Callable[[dict], float] | None = None
    data_check: TrainConfig | None = None  # the largest trial: the corpora must be able to feed it


def _corner(space: SearchSpace, names: tuple[str, ...], pick) -> dict[str, Any]:
    """The params of `names` set to their extreme (`pick` = max or min) values."""
    out = {}
    for name, d in space.distributions.items():
        if name in names:
            out[name] = pick(d.choices) if hasattr(d, "choices") else pick(d.low, d.high)
    return out


def _plan(objective, space, config: StudyConfig | None, settings: SearchConfig, work: Path, cost=None) -> _Plan:
    """Resolve the objective and space and check, before anything runs, that the budget can be met."""
    if config is None:
        if space is None:
            raise ConfigError("a custom objective needs a search space: pass space=SearchSpace(...) or a path")
        space = space if isinstance(space, SearchSpace) else load_space(space)
        return _Plan(objective, space, settings.max_train_tokens or 10**15, settings.grace_tokens or 1, cost)
    base = config.base_train_config()
    space = space if isinstance(space, SearchSpace) else load_space(space or settings.space, base)
    if settings.sampler == "grid" and settings.n_trials > grid_size(space):
        raise ConfigError(f"the grid has {grid_size(space)} points: set search.n_trials to at most that")
    for point in settings.enqueue:
        space.apply(point, base)  # a typo in an enqueued config fails here, not in a trial

    def cost(params: dict) -> float:
        return space.apply(params, base).budget.total_tokens

    sized = ("epochs", "mix_ratio", "unique_tokens", "budget.train_tokens")
    max_tokens = cost(_corner(space, sized, max))
    cap = settings.max_train_tokens
    if cap is not None:
        if cost(_corner(space, sized, min)) > cap:
            raise ConfigError(
                f"search.max_train_tokens={cap:,} is below the smallest trial of the space "
                f"({cost(_corner(space, sized, min)):,.0f} tokens): raise it or shrink epochs/unique_tokens"
            )
        max_tokens = min(max_tokens, cap)
    r_max = _corner(space, ("mix_ratio",), max).get("mix_ratio", space.fixed.get("mix_ratio", base.budget.mix_ratio))
    worst = base.budget.model_copy(update={"mode": "fixed_tokens", "train_tokens": max_tokens, "mix_ratio": r_max})
    fn = TrainerObjective(base, space, work / "trials", cpu_threads(settings.cpus_per_trial))
    cost_fn = cost if cap is not None else None
    return _Plan(fn, space, max_tokens, config.eval_every_tokens, cost_fn, base.model_copy(update={"budget": worst}))


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


def _make_writable(work: Path) -> None:
    try:
        work.mkdir(parents=True, exist_ok=True)
        probe = work / ".automix-write-test"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"cannot write work_dir {work} ({e.strerror}): choose a writable work_dir") from None


def _settings(config: StudyConfig | None, overrides: dict[str, Any]) -> SearchConfig:
    try:
        return SearchConfig.model_validate({**(config.search.model_dump() if config else {}), **overrides})
    except ValidationError as e:
        raise ConfigError(f"search settings: {format_validation_error(e)}") from None


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
    join: bool = False,
    verbose: bool = True,
    cost: Callable[[dict], float] | None = None,
    callbacks: list[tune.Callback] | None = None,
    **settings: Any,
) -> SearchResult:
    """Run a search and return its result.

    `objective` is a `StudyConfig` (the built-in trainer objective) or a callable
    `objective(params, report) -> dict`. `space` defaults to the config's `search.space`.
    `settings` override `SearchConfig` fields (sampler, n_trials, concurrency, scheduler, metric,
    mode, max_train_tokens, max_total_tokens, time_budget_s, enqueue, ...). `storage` is an Optuna
    storage URL (default: sqlite in the work directory), `tracking_uri` an MLflow URI (default:
    sqlite in the work directory), `address` a Ray cluster to join. `resume=True` continues the
    study; `join=True` runs alongside other drivers of the same study (a journal file or a database
    storage, not sqlite), which together stop at `n_trials`. `cost(params)` gives a custom
    objective's training tokens, for `max_train_tokens` (the built-in objective computes
    T = E·U/(1-r) itself). `callbacks` are extra Ray Tune callbacks, called before automix's own.
    Bad input raises `ConfigError` or `CorpusError` before anything is written.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    config = objective if isinstance(objective, StudyConfig) else None
    search_cfg = _settings(config, settings)
    study_name = study or (config.study if config else "automix")
    work = (
        Path(work_dir).resolve() if work_dir else (config.work_path if config else Path("runs", study_name).resolve())
    )
    created = not work.exists()
    started_ray = False
    try:
        plan = _plan(objective, space, config, search_cfg, work, cost)
        storage_url = storage or f"sqlite:///{work / 'optuna.db'}"
        tracking_uri = tracking_uri or (config.tracking.uri if config else None) or default_tracking_uri(work)
        check_tracking_uri(tracking_uri)
        _make_writable(work)
        ot_storage = open_storage(storage_url)
        if join and storage_url.startswith("sqlite"):
            raise ConfigError(
                "several drivers must not share a sqlite study: give --storage journal:PATH (one machine) "
                "or a database URL such as postgresql://HOST/DB"
            )
        check_study(ot_storage, study_name, search_cfg, resume, plan.space, join)
        if plan.data_check is not None:
            # Corpora readable, U available, auxiliary enough for the largest r·T; warms the cache.
            prepare(plan.data_check)
        experiment = (config.tracking.experiment if config else None) or study_name
        # Ray's start is mostly waiting on its processes (and releases the GIL): open the study and
        # the MLflow store meanwhile. ray.init itself must stay on the main thread.
        with ThreadPoolExecutor(1) as pool:
            study_opening = pool.submit(prepare_study, ot_storage, study_name, search_cfg, join)
            tracker_opening = pool.submit(Tracker, tracking_uri, experiment, work / "mlartifacts")
            started_ray = _ray_init(work, address)
            state, tracker = study_opening.result(), tracker_opening.result()
    except (ConfigError, CorpusError):
        if started_ray:
            ray.shutdown()
        if created:
            shutil.rmtree(work, ignore_errors=True)  # nothing half-written
        raise

    if resume and not join:
        tracker.close_stale_runs()
    tags = {"sampler": search_cfg.sampler, "scheduler": search_cfg.scheduler, "study": study_name}
    params = flatten(config.model_dump()) if config else {"space": plan.space.source}
    parent_id = tracker.start_parent(
        f"search-{study_name}", {**params, **flatten(search_cfg.model_dump(), "search.")}, tags
    )
    if config is not None:
        tracker.log_dict(parent_id, config.model_dump(), "config.json")
    mlflow_cb = MlflowTrialCallback(tracker, tags, search_cfg.metrics)

    searcher = StudySearcher(
        space=plan.space.distributions,
        metric=search_cfg.metric,
        mode=search_cfg.mode,
        # Offset by the invocation: a resumed (or joining) driver's sampler must not replay the
        # random suggestions of the first one, which would all be repeats of trained points.
        sampler=make_sampler(search_cfg.sampler, plan.space, search_cfg.seed + state.invocation),
        study_name=study_name,
        storage=ot_storage,
        cost=plan.cost,
        max_cost=search_cfg.max_train_tokens,
        target=search_cfg.n_trials,
    )
    budget = TokenBudget(search_cfg.max_total_tokens, already_spent=state.tokens_spent)
    status = "FAILED"
    try:
        if state.remaining > 0 and not budget.stop_all():
            resources = {"cpu": search_cfg.cpus_per_trial, "gpu": search_cfg.gpus_per_trial}
            tuner = tune.Tuner(
                tune.with_resources(make_trainable(plan.objective), resources),
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    scheduler=make_scheduler(search_cfg, plan.max_tokens, plan.eval_every),
                    num_samples=state.remaining,
                    max_concurrent_trials=search_cfg.concurrency,
                    time_budget_s=search_cfg.time_budget_s,
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    # One Ray experiment per invocation; the Optuna study spans all of them.
                    name=f"{study_name}-{state.invocation}",
                    storage_path=str(work / "ray"),
                    stop=budget,
                    failure_config=tune.FailureConfig(max_failures=search_cfg.trial_retries),
                    callbacks=[
                        *(callbacks or []),
                        FailureCallback(searcher),
                        mlflow_cb,
                        ProgressCallback(search_cfg.metrics, state.remaining, verbose),
                    ],
                    verbose=0,
                ),
            )
            tuner.fit()
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        searcher.flush_failures()
        _report_unwritten(mlflow_cb, work)
        if started_ray:
            ray.shutdown()
        result = collect(
            study_name,
            storage_url,
            ot_storage,
            work,
            search_cfg,
            mlflow_parent_run_id=parent_id,
            mlflow_run_ids=dict(mlflow_cb.run_ids),
        )
        _finish_tracking(tracker, parent_id, result, search_cfg, status)
    return result


def _report_unwritten(callback: MlflowTrialCallback, work: Path) -> None:
    """Last try to write queued MLflow records; list what could not be written, for the user."""
    path = work / "tracking_unwritten.json"
    if callback.drain() == 0:
        path.unlink(missing_ok=True)
        return
    path.write_text(json.dumps(callback.unwritten(), indent=1))
    log.warning("MLflow: %d records could not be written; they are listed in %s", len(callback.unwritten()), path)


def _finish_tracking(tracker: Tracker, parent_id: str, result: SearchResult, settings: SearchConfig, status: str):
    try:
        if result.pareto_front:
            best = dict(zip(settings.metrics, result.pareto_front[0].values, strict=True))
            tracker.log_metrics(parent_id, {f"best_{m}": v for m, v in best.items()}, 0)
        tracker.log_artifact(parent_id, result.work_dir / "best.json")
        best = result.pareto_front[0].number if result.pareto_front else None
        tracker.end(parent_id, status, tags={"best_trial": str(best)})
    except Exception as e:  # noqa: BLE001 - tracking never fails a finished search
        log.warning("MLflow: could not close the parent run: %s", e)
