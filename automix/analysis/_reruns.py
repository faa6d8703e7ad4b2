"""Re-train chosen settings with other seeds or other U, in parallel, with results cached on disk.

Analyses need runs a search did not make: the best settings under fresh seeds (error bars that
are not biased by the selection), or at other data budgets (the multiplier's reference curve).
Each finished run's final metrics are cached under its trainer config's `fingerprint` (the key
the trainer's own state and result files use), so `compare`, `multiplier` and a re-run of either
never train the same config twice.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from automix.config._space import load_space
from automix.config._study import StudyConfig
from trainer.atomic import write_json
from trainer.config import TrainConfig, fingerprint


def settings_config(config: StudyConfig, params: dict[str, Any], **budget: Any) -> TrainConfig:
    """The trainer config of `params` in `config`'s space (fixed values applied), budget fields overridden."""
    base = config.base_train_config()
    train = load_space(config.search.space, base).apply(params, base)
    if budget:
        train = train.model_copy(update={"budget": train.budget.model_copy(update=budget)})
    return train


def with_seed(config: TrainConfig, seed: int) -> TrainConfig:
    """`config` trained from another seed (initialisation, stream order; U stays the same tokens)."""
    return config.model_copy(update={"seed": seed})


def _train(config: TrainConfig) -> dict[str, float]:
    from trainer.train import run  # imported in the worker: torch loads once per process

    return run(config).metrics


def train_many(
    configs: Sequence[TrainConfig], cache_dir: Path | Sequence[Path], workers: int = 1
) -> list[dict[str, float]]:
    """Final metrics of each config, trained `workers` at a time (one thread each) or read from the cache.

    `cache_dir` is one folder for all configs or one per config (each study caches in its own).
    """
    dirs = [Path(cache_dir)] * len(configs) if isinstance(cache_dir, str | Path) else [Path(d) for d in cache_dir]
    paths = [d / f"{fingerprint(c)}.json" for d, c in zip(dirs, configs, strict=True)]
    todo = {p: c for p, c in zip(paths, configs, strict=True) if not p.exists()}
    if todo:
        jobs = [c.model_copy(update={"threads": 1, "out_dir": None}) for c in todo.values()]
        # spawn: forked workers would inherit the parent's torch thread pools and locks.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx) as pool:
            # Each run is cached as it finishes, so a failure or an interruption loses only its own run.
            futures = {pool.submit(_train, job): (path, job) for path, job in zip(todo, jobs, strict=True)}
            errors = []
            for future in as_completed(futures):
                path, job = futures[future]
                if (error := future.exception()) is not None:
                    errors.append(error)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json(path, {"config": job.model_dump(), "metrics": future.result()})
        if errors:
            raise errors[0]
    return [json.loads(p.read_text())["metrics"] for p in paths]
