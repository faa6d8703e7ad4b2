"""`search(config)` and `search_objective(objective, space)`: Optuna suggests, Ray Tune runs, MLflow records.

Four phases, one function each: preflight (`_preflight.py`) checks and writes nothing; `_open`
makes the work directory, the study, the MLflow parent run and starts Ray; `_run` is one
`Tuner.fit`; `collect` writes `best.json` and the result. docs/design.md, "One trial, end to end".
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import ray
from pydantic import ValidationError
from ray import tune
from ray.tune.stopper import CombinedStopper

from automix.config._space import SpaceLike, as_space
from automix.config._study import SearchConfig, StudyConfig, format_validation_error
from automix.console import LOG_NAME, ProgressCallback, planned_tokens, quiet_output
from automix.driver._preflight import Plan, objective_plan, trainer_plan
from automix.driver._process import cluster_gpus, make_writable, ray_init, terminate_as_interrupt
from automix.errors import ConfigError
from automix.resources import gpu_share_line, resolve_gpus_per_trial, visible_gpu_free_bytes
from automix.samplers import make_sampler
from automix.scheduling import (
    FailFast,
    FailureCallback,
    MlflowTrialCallback,
    StudySearcher,
    TokenBudget,
    make_scheduler,
    trial_logging,
)
from automix.study._prepare import StudyState, check_study, prepare_study
from automix.study._results import SearchResult, collect
from automix.study._storage import StorageUnavailable
from automix.study._workspace import Workspace
from automix.tracking._store import Tracker, check_tracking_uri
from automix.trial._reporter import Objective
from automix.trial._trainable import make_trainable
from trainer.atomic import write_json
from trainer.data import prepare
from trainer.errors import CorpusError

log = logging.getLogger(__name__)


def search(
    config: StudyConfig,
    *,
    storage: str | None = None,
    address: str | None = None,
    resume: bool = False,
    join: bool = False,
    verbose: bool = True,
    callbacks: list[tune.Callback] | None = None,
    **settings: Any,
) -> SearchResult:
    """Search the built-in trainer objective of a study config and return the result.

    Args:
        config: The study config (`automix.load_config`).
        storage: An Optuna storage URL or `journal:PATH`; overrides the config's `storage`.
        address: A Ray cluster to join (`auto`, `ray://HOST:10001`); default: start one here.
        resume: Continue the study (without it, an existing study is refused).
        join: Run alongside other drivers of the study (a journal file or a database, not sqlite).
        verbose: Print the live view or progress lines (Ray's and MLflow's own output goes to
            WORK/automix.log either way).
        callbacks: Extra Ray Tune callbacks, called before automix's own.
        **settings: `SearchConfig` fields to override (`sampler`, `n_trials`, `concurrency`,
            `scheduler`, `max_train_tokens`, ...). `sampler` is a registered name
            (`automix.samplers.sampler_names()`) or an `optuna.samplers.BaseSampler` used as given.

    Returns:
        The `SearchResult`: best params and value, every trial, the Pareto front, where it is kept.

    Raises:
        ConfigError, CorpusError: bad input, before anything is written.

    Example:
        >>> import automix  # doctest: +SKIP
        >>> result = automix.search(automix.load_config("examples/ar_en_cpu.yaml"), n_trials=4)  # doctest: +SKIP
        >>> result.best_params  # doctest: +SKIP
    """
    if not isinstance(config, StudyConfig):
        raise ConfigError(
            "automix.search takes a StudyConfig (automix.load_config(path)); "
            "for your own objective use automix.search_objective(objective, space, ...)"
        )
    workspace = Workspace.from_config(config, storage)
    sampler, settings = _sampler_object(settings)
    plan = trainer_plan(config, _settings(config.search, settings, sampler), workspace)
    return _search(plan, address, resume, join, verbose, callbacks, sampler)


def search_objective(
    objective: Objective,
    space: SpaceLike,
    *,
    study: str = "automix",
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
    """Search a custom `objective(params, report) -> dict` over `space` and return the result.

    Args:
        objective: `objective(params, report) -> metrics`; it calls `report({...})` at each
            evaluation with `tokens` (the scheduler's axis) and its metric (a `Reporter`).
        space: A `SearchSpace`, a space file's path, a dict of Optuna distributions, or a dict in
            the space-file format (`{"x": {"type": "float", "low": 0, "high": 1}}`).
        study, work_dir, storage, tracking_uri: Where the study is kept (default: `runs/<study>`,
            sqlite files in it).
        cost: `cost(params)`, a suggestion's training tokens (for `max_train_tokens` and the
            cost-aware samplers).
        address, resume, join, verbose, callbacks, **settings: As in `search`. Early stopping
            compares trials at equal `tokens` unless `fidelity="progress"` (then report `progress`).

    Returns:
        The `SearchResult`.

    Example:
        >>> def bowl(params, report):  # doctest: +SKIP
        ...     loss = (params["x"] - 0.3) ** 2
        ...     report({"tokens": 1, "loss": loss})
        ...     return {"loss": loss}
        >>> result = automix.search_objective(  # doctest: +SKIP
        ...     bowl, {"x": {"type": "float", "low": 0, "high": 1}}, metric="loss", n_trials=20
        ... )
    """
    workspace = Workspace.of(study, work_dir, storage, tracking_uri)
    # `progress` is optional in a custom objective's reports, `tokens` is not: its early stopping
    # compares trials at equal tokens unless it asks for the progress axis (fidelity="progress").
    sampler, settings = _sampler_object({"fidelity": "tokens", **settings})
    plan = objective_plan(objective, as_space(space), _settings(SearchConfig(), settings, sampler), workspace, cost)
    return _search(plan, address, resume, join, verbose, callbacks, sampler)


def _sampler_object(settings: dict[str, Any]) -> tuple[optuna.samplers.BaseSampler | None, dict[str, Any]]:
    """A sampler object passed as `sampler=`, and the settings without it (a config names one only)."""
    sampler = settings.get("sampler")
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        return None, settings
    return sampler, {k: v for k, v in settings.items() if k != "sampler"}


def _settings(
    base: SearchConfig, overrides: dict[str, Any], sampler: optuna.samplers.BaseSampler | None = None
) -> SearchConfig:
    unknown = sorted(set(overrides) - set(SearchConfig.model_fields))
    if unknown:
        raise ConfigError(f"unknown search setting {unknown[0]}=: choose from {', '.join(SearchConfig.model_fields)}")
    try:
        settings = SearchConfig.model_validate({**base.model_dump(), **overrides})
    except ValidationError as e:
        raise ConfigError(f"search settings: {format_validation_error(e)}") from None
    # A sampler object goes by its class name wherever the settings name the sampler (MLflow's
    # `sampler` tag and `search.sampler` param); no name check applies: it is used, not built.
    return settings if sampler is None else settings.model_copy(update={"sampler": type(sampler).__name__})


def _search(
    plan: Plan, address, resume: bool, join: bool, verbose: bool, callbacks, sampler: optuna.samplers.BaseSampler | None
) -> SearchResult:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    _check_study(plan, resume, join)
    session = _open(plan, address, resume, join)
    searcher = _searcher(plan, session.state, sampler)
    trial_log = trial_logging(plan.objective, (plan.config or {}).get("tracking"), local=address is None)
    mlflow_cb = MlflowTrialCallback(session.tracker, session.tags, plan.settings.metrics, trial_log)
    status = "FAILED"
    try:
        _run(plan, session, searcher, [*(callbacks or []), FailureCallback(searcher), mlflow_cb], verbose)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except StorageUnavailable:
        status = None  # the study cannot be read back: `--resume` continues it later
        raise
    finally:
        _close(session, mlflow_cb, plan.workspace)
        if status is None:
            session.tracker.end(session.parent_id, "FAILED")
        else:
            searcher.flush_failures()
            result = collect(plan.workspace, plan.settings, session.parent_id, dict(mlflow_cb.run_ids))
            _finish_tracking(session, result, plan.settings, status)
    return result


def _check_study(plan: Plan, resume: bool, join: bool) -> None:
    """Refuse, reading only, a study this search must not touch (before the work directory exists)."""
    ws = plan.workspace
    if join and not ws.shares_storage:
        raise ConfigError(
            "several drivers must not share a sqlite study: set storage to journal:PATH (one machine) "
            "or a database URL such as postgresql+psycopg2://HOST/DB"
        )
    check_tracking_uri(ws.tracking_uri)
    ws.check_owner()
    if not ws.storage_missing():
        check_study(ws.storage, ws.study, plan.settings, resume, plan.space, join)


@dataclass
class _Session:
    """What the open phase made: the study's state, the MLflow store and parent run, and Ray."""

    state: StudyState
    tracker: Tracker
    parent_id: str
    tags: dict[str, str]
    started_ray: bool


def _open(plan: Plan, address: str | None, resume: bool, join: bool) -> _Session:
    """Work directory, corpora, study, MLflow store and Ray; on bad input, remove what it made."""
    ws, created = plan.workspace, not plan.workspace.work_dir.exists()
    started_ray = False
    try:
        make_writable(ws.work_dir)
        ws.claim()
        if plan.data_check is not None:
            prepare(plan.data_check)  # corpora readable, U and the auxiliary enough for the largest trial
        # Ray's start is mostly waiting on its processes (and releases the GIL): open the study and
        # the MLflow store meanwhile. ray.init itself must stay on the main thread.
        with ThreadPoolExecutor(1) as pool:
            study_opening = pool.submit(prepare_study, ws.storage, ws.study, plan.settings, join)
            tracker_opening = pool.submit(ws.tracker)
            started_ray = ray_init(ws.work_dir, address)
            state, tracker = study_opening.result(), tracker_opening.result()
    except (ConfigError, CorpusError):
        if started_ray:
            ray.shutdown()
        if created:
            shutil.rmtree(ws.work_dir, ignore_errors=True)  # nothing half-written
        raise
    if resume and not join:
        tracker.close_stale_runs()
    tags = {"sampler": plan.settings.sampler, "scheduler": plan.settings.scheduler, "study": ws.study}
    parent_id = tracker.start_parent(f"search-{ws.study}", plan.logged_params, tags)
    if plan.config is not None:
        tracker.log_dict(parent_id, plan.config, "config.json")
    return _Session(state, tracker, parent_id, tags, started_ray)


def _searcher(plan: Plan, state: StudyState, sampler: optuna.samplers.BaseSampler | None = None) -> StudySearcher:
    """The searcher over the study: `sampler` as given (not re-seeded), else the named one, seeded."""
    settings = plan.settings
    if sampler is None:
        sampler = make_sampler(settings.sampler, plan.space, sampler_seed(settings, state.invocation), cost=plan.cost)
    return StudySearcher(
        space=plan.space.distributions,
        metric=settings.metric,
        mode=settings.mode,
        sampler=sampler,
        study_name=plan.workspace.study,
        storage=plan.workspace.storage,
        cost=plan.cost,
        max_cost=settings.max_train_tokens,
        target=settings.n_trials,
        seed=sampler_seed(settings, state.invocation),  # the random retries after a rejection
    )


def _run(plan: Plan, session: _Session, searcher: StudySearcher, callbacks: list, verbose: bool) -> None:
    """One Ray Tune run: the trials still to train, at most `concurrency` at once.

    Ray's and MLflow's own output goes to WORK/automix.log (`quiet_output`); the console shows
    automix's progress. SIGTERM ends the run like Ctrl-C (the search's cleanup stops Ray), and a
    run whose first trials all fail with one error stops with it (`FailFast`, a ConfigError).
    """
    settings, state, ws = plan.settings, session.state, plan.workspace
    budget = TokenBudget(settings.max_total_tokens, already_spent=state.tokens_spent)
    if state.remaining <= 0 or budget.stop_all():
        return
    guard = FailFast(max(2, min(settings.concurrency + 2, state.remaining)), ws.path("errors"))
    resources = {"cpu": settings.cpus_per_trial, "gpu": _gpu_share(plan, session)}
    with quiet_output(ws.path(LOG_NAME)) as terminal, terminate_as_interrupt():
        progress = ProgressCallback(
            settings.metrics,
            state.remaining,
            verbose,
            concurrency=min(settings.concurrency, state.remaining),
            minimize=settings.modes[0] == "min",
            planned=planned_tokens(plan.objective, plan.cost),
            errors_dir=ws.path("errors"),
            stream=terminal,
        )
        tuner = tune.Tuner(
            tune.with_resources(make_trainable(plan.objective), resources),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=make_scheduler(settings, plan.max_tokens, plan.eval_every),
                num_samples=state.remaining,
                max_concurrent_trials=settings.concurrency,
                time_budget_s=settings.time_budget_s,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                # One Ray experiment per invocation; the Optuna study spans all of them.
                name=f"{ws.study}-{state.invocation}",
                storage_path=str(ws.path("ray")),
                stop=CombinedStopper(budget, guard),
                failure_config=tune.FailureConfig(max_failures=settings.trial_retries),
                callbacks=[*callbacks, guard, progress],
                verbose=0,
            ),
        )
        try:
            tuner.fit()
        except Exception as e:
            if (lost := _storage_cause(e)) is not None:
                raise lost from None  # one line for the user, not Ray's wrapping of it
            raise
        finally:
            progress.close()
    if guard.error is not None:
        raise guard.error


def _gpu_share(plan: Plan, session: _Session) -> float:
    """The GPU share per trial (`gpus_per_trial`, "auto" packs), said on the console and in MLflow."""
    value = plan.settings.gpus_per_trial
    free = visible_gpu_free_bytes() if value == "auto" else None
    cluster = cluster_gpus() if value == "auto" and free is None else 0.0
    share, per_gpu = resolve_gpus_per_trial(value, plan.data_check, plan.settings.cpus_per_trial, free, cluster)
    if share > 0 or value == "auto":
        print(f"GPUs: {gpu_share_line(share, per_gpu, cluster)}", file=sys.stderr)
    if share > 0:
        session.tracker.set_tags(session.parent_id, {"trials_per_gpu": str(per_gpu), "gpus_per_trial": f"{share:.3g}"})
    return share


def _storage_cause(error: BaseException | None) -> StorageUnavailable | None:
    """The `StorageUnavailable` under the errors Ray Tune wraps a searcher's exception in, if any."""
    while error is not None:
        if isinstance(error, StorageUnavailable):
            return error
        error = error.__cause__ or error.__context__
    return None


def _close(session: _Session, callback: MlflowTrialCallback, ws: Workspace) -> None:
    """Write what MLflow still owes (or list it for the user), and stop Ray if this search started it."""
    path = ws.path("tracking_unwritten.json")
    if callback.drain() == 0:
        path.unlink(missing_ok=True)
    else:
        write_json(path, callback.unwritten())
        log.warning("MLflow: %d records could not be written; they are listed in %s", len(callback.unwritten()), path)
    if session.started_ray:
        with quiet_output(ws.path(LOG_NAME)):  # the trial actors' exit tracebacks, streamed to stderr
            ray.shutdown()


def _finish_tracking(session: _Session, result: SearchResult, settings: SearchConfig, status: str) -> None:
    tracker, parent_id = session.tracker, session.parent_id
    try:
        if result.pareto_front:
            best = dict(zip(settings.metrics, result.pareto_front[0].values, strict=True))
            tracker.log_metrics(parent_id, {f"best_{m}": v for m, v in best.items()}, 0)
        tracker.log_artifact(parent_id, result.work_dir / "best.json")
        best = result.pareto_front[0].number if result.pareto_front else None
        best_run = tracker.mark_best(session.tags["study"], best)  # its trial run: tagged automix.best
        model = tracker.register_best(session.tags["study"], best_run)  # and its model registered
        tags = {"best_trial": str(best), "best_run_id": str(best_run), "best_model": str(model)}
        tracker.end(parent_id, status, tags=tags)
    except Exception as e:  # noqa: BLE001 - tracking never fails a finished search
        log.warning("MLflow: could not close the parent run: %s", e)


def sampler_seed(settings: SearchConfig, invocation: int) -> int:
    """The seed of this invocation's sampler: derived from the seed and the invocation, so a resumed
    or joining driver does not replay the first one's random draws, except for a grid, whose order
    must stay the same: GridSampler gives trial number k the k-th point of its seeded shuffle, so
    another shuffle would send a resumed sweep to points already trained and leave others out.
    Mixed, not added: two drivers joining with seeds 0 and 1 would otherwise both draw with seed 1
    (0 + invocation 1, 1 + invocation 0) and propose the same points."""
    if settings.sampler == "grid" or invocation == 0:
        return settings.seed
    return int(np.random.SeedSequence([settings.seed, invocation]).generate_state(1)[0])
