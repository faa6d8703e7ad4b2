"""Verify transfer by measurement: LR × size and WD × size sweeps along width or along depth.

Along width μP is measured against SP; along depth (at a fixed width) CompleteP against μP. Each
grid point is one training run in its own process, an MLflow run tagged `kind=verify`, cached
under its config's fingerprint in `WORK/verify_transfer/runs/`. The criterion: under the
transferring parametrisation the best lr stays within one 2× grid step across the sizes.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from automix.config._study import StudyConfig
from automix.errors import ConfigError
from automix.scaling._transfer import quietly, with_values
from automix.study._workspace import Workspace
from automix.tracking._store import Tracker, flatten
from trainer.atomic import write_json
from trainer.config import TrainConfig, fingerprint
from trainer.coord_check import COMPARED, Axis
from trainer.data import prepare
from trainer.model import LABELS
from trainer.train import TrainingDiverged, run

LR_GRID = tuple(1e-3 * 2**k for k in range(7))  # 2× steps: the resolution the criterion is stated in
WD_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)


@dataclass
class VerifyResult:
    """Every run's loss, the best value per size, and how far the best value drifts."""

    losses: pd.DataFrame  # sweep, parametrization, width, depth, value (lr or wd), loss
    best: pd.DataFrame  # sweep, parametrization, the axis' size, value, loss: the argmin per size
    drift: dict[str, int]  # "lr/mup" → grid steps between the smallest and largest best value
    plot: Path
    path: Path
    axis: Axis = "width"

    def transfers(self, sweep: str = "lr", parametrization: str | None = None) -> bool:
        """The criterion: the best value stays within one grid step across all sizes.

        `parametrization` defaults to the one that should transfer along the axis (μP in width,
        CompleteP in depth).
        """
        return self.drift[f"{sweep}/{parametrization or COMPARED[self.axis][0]}"] <= 1


def verify_transfer(
    config: StudyConfig,
    widths: list[int] | tuple[int, ...] = (32, 64, 128, 256),
    lrs: list[float] | tuple[float, ...] = LR_GRID,
    wds: list[float] | tuple[float, ...] = WD_GRID,
    verbose: bool = True,
    depths: list[int] | tuple[int, ...] | None = None,
) -> VerifyResult:
    """LR × size sweep (both parametrisations), then WD × size (the transferring one, at its best base-size lr).

    Along width (the default) μP against SP, with base_width the smallest width, where μP and SP
    share every multiplier (they differ only in μP's zero-initialised readout and queries). With
    `depths`, along depth at the config's width instead: CompleteP against μP, with base_depth the
    smallest depth, where the two are the same model (`widths` is then not used). Runs
    `config.search.concurrency` trainings at once, one thread each. Workers are spawned, so a
    script calling this needs the `if __name__ == "__main__":` guard.

    Args:
        config: the study config whose data, budget and model the runs share.
        widths: the widths of a width check.
        lrs: the learning-rate grid (2× steps: the criterion's resolution).
        wds: the weight-decay grid; empty skips the WD sweep.
        verbose: print each run's loss as it finishes.
        depths: the depths of a depth check, instead of a width check.

    Returns:
        The losses, the best value per size and its drift. Also writes them (JSON) and a plot of
        loss vs lr and wd per size to `WORK/verify_transfer/`: `verify_transfer.*` along width,
        `verify_transfer_depth_wW.*` along depth at width W.

    Example:
        >>> result = verify_transfer(load_config("examples/ar_en_cpu.yaml"), [32, 64, 128])  # doctest: +SKIP
        >>> result.transfers("lr")  # doctest: +SKIP
    """
    axis: Axis = "depth" if depths else "width"
    sizes = list(depths or widths)
    if len(sizes) < 2 or len(lrs) < 2 or len(wds) == 1:
        raise ConfigError(
            "verify-transfer needs two sizes and two learning rates or more, and two weight decays or none"
        )
    transferring, contrast = COMPARED[axis]
    base_size = min(sizes)
    base = with_values(config.base_train_config(), {f"model.base_{axis}": base_size, "threads": 1})
    prepare(base)  # tokenize and cache once, and fail on bad data before any run starts
    workspace = Workspace.from_config(config)
    work = workspace.path("verify_transfer")
    stem = "verify_transfer" if axis == "width" else f"verify_transfer_depth_w{base.model.width}"
    tracker = workspace.tracker()
    parent = tracker.start_parent(stem.replace("_", "-"), {f"{axis}s": sizes}, {"kind": "verify"})
    runner = _Runner(base, axis, tracker, config.search.concurrency, work / "runs", verbose)

    frames = [runner.sweep("lr", {"learning_rate": lrs, "model.parametrization": [transferring, contrast]}, sizes)]
    best_lr = None
    if wds:
        at_base = frames[0][(frames[0].parametrization == transferring) & (frames[0][axis] == base_size)]
        best_lr = float(at_base.loc[at_base.loss.idxmin(), "value"])
        fixed = {"learning_rate": best_lr, "model.parametrization": transferring}
        frames.append(runner.sweep("wd", {"weight_decay": wds}, sizes, fixed))
    losses = pd.concat(frames, ignore_index=True)
    best, drift = summarize(losses, {"lr": lrs, "wd": wds}, axis)
    result = VerifyResult(losses, best, drift, work / f"{stem}.png", work / f"{stem}.json", axis)
    plot_sweeps(losses, result.plot, axis)
    record = {
        f"{axis}s": sizes,
        f"base_{axis}": base_size,
        "wd_sweep_lr": best_lr,
        "drift_grid_steps": drift,
        "best": best.to_dict("records"),
        "losses": losses.to_dict("records"),
    }
    write_json(result.path, record)
    quietly(tracker.log_artifact, parent, result.plot)
    quietly(tracker.log_artifact, parent, result.path)
    quietly(tracker.end, parent, "FINISHED", tags={f"drift.{k}": str(v) for k, v in drift.items()})
    return result


def summarize(losses: pd.DataFrame, grids: dict[str, Any], axis: Axis = "width") -> tuple[pd.DataFrame, dict[str, int]]:
    """The best grid value per sweep, parametrisation and size, and its drift in grid steps.

    Drift is the distance, in grid positions, between the smallest and the largest best value across
    sizes: 0 or 1 passes the criterion, 2 or more means the optimum moved by more than one step.

    Args:
        losses: one row per run: sweep, parametrization, `axis`, value, loss.
        grids: each sweep's grid ("lr", "wd").
        axis: the size column, "width" or "depth".

    Returns:
        The argmin rows per sweep, parametrisation and size, and the drift per "sweep/parametrization".
    """
    best = losses.loc[losses.groupby(["sweep", "parametrization", axis]).loss.idxmin()].reset_index(drop=True)
    drift = {
        f"{sweep}/{p}": max(idx) - min(idx)
        for (sweep, p), rows in best.groupby(["sweep", "parametrization"])
        for idx in [[sorted(grids[sweep]).index(v) for v in rows.value]]
    }
    return best, drift


def _final_loss(config: dict[str, Any]) -> float:
    """One run in a worker process: its final target_val_loss, inf if it diverged."""
    try:
        return run(TrainConfig.model_validate(config)).metrics["target_val_loss"]
    except TrainingDiverged:
        return float("inf")


def final_losses(
    configs: list[TrainConfig],
    cache: Path,
    workers: int,
    on_trained: Callable[[TrainConfig, float], None] | None = None,
) -> list[float]:
    """Final target_val_loss of each config (inf where it diverged), trained `workers` at a time or read from `cache`.

    Args:
        configs: the runs; each trains in a spawned process (a forked child of a process that has
            run torch can hang in OpenMP).
        cache: one JSON per run, named by its config's fingerprint: a second call trains only what
            is missing.
        workers: runs at once.
        on_trained: called with each newly trained config and its loss, as each one finishes.

    Returns:
        The losses, in the order of `configs`.
    """
    paths = [cache / f"{fingerprint(c)}.json" for c in configs]
    todo = {path: config for path, config in zip(paths, configs, strict=True) if not path.exists()}
    if todo:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_final_loss, c.model_dump()): (path, c) for path, c in todo.items()}
            for future in as_completed(futures):
                path, config = futures[future]
                loss = future.result()
                write_json(path, {"config": config.model_dump(), "target_val_loss": loss})
                if on_trained:
                    on_trained(config, loss)
    return [json.loads(path.read_text())["target_val_loss"] for path in paths]


class _Runner:
    """Runs grids of configs along one size axis and tracks each newly trained point as an MLflow run."""

    def __init__(self, base: TrainConfig, axis: Axis, tracker: Tracker, workers: int, cache: Path, verbose: bool):
        self.base, self.axis, self.tracker, self.workers = base, axis, tracker, workers
        self.cache, self.verbose = cache, verbose

    def sweep(self, name: str, grid: dict[str, Any], sizes, fixed: dict[str, Any] | None = None) -> pd.DataFrame:
        """Every point of `grid` × sizes: returns sweep, parametrization, width, depth, value, loss."""
        setting = next(iter(grid))  # the swept optimiser setting: learning_rate or weight_decay
        grid = {**grid, f"model.{self.axis}": list(sizes)}
        points = [{**(fixed or {}), **dict(zip(grid, v, strict=True))} for v in itertools.product(*grid.values())]
        points.sort(key=lambda p: -p[f"model.{self.axis}"])  # longest runs first: the pool ends together
        configs = [with_values(self.base, p) for p in points]
        losses = final_losses(configs, self.cache, self.workers, lambda c, loss: self._trained(name, c, loss))
        return pd.DataFrame(
            {
                "sweep": name,
                "parametrization": c.model.parametrization,
                "width": c.model.width,
                "depth": c.model.depth,
                "value": p[setting],
                "loss": loss,
            }
            for p, c, loss in zip(points, configs, losses, strict=True)
        )

    def _trained(self, sweep: str, config: TrainConfig, loss: float) -> None:
        model, optim = config.model, config.optim
        tags = {
            "kind": "verify",
            "sweep": sweep,
            "width": str(model.width),
            "depth": str(model.depth),
            "parametrization": model.parametrization,
        }
        name = f"verify-{sweep}-w{model.width}" + (f"d{model.depth}" if self.axis == "depth" else "")
        run_id = quietly(self.tracker.start_child, name, flatten(config.model_dump()), tags)
        if run_id:
            quietly(self.tracker.log_metrics, run_id, {"target_val_loss": loss}, config.budget.total_tokens)
            quietly(self.tracker.end, run_id, "FINISHED" if loss < float("inf") else "FAILED")
        if self.verbose:
            print(
                f"{sweep} {model.parametrization} width={model.width} depth={model.depth} "
                f"lr={optim.learning_rate:.4g} wd={optim.weight_decay:.4g} target_val_loss={loss:.4f}"
            )


def plot_sweeps(losses: pd.DataFrame, path: Path, axis: Axis = "width") -> Path:
    """Final target loss vs lr (both parametrisations) and vs wd, one line per size: the classic μP figure."""
    import matplotlib

    matplotlib.use("Agg")  # headless: write a file, never open a window
    import matplotlib.pyplot as plt

    panels = sorted(losses.groupby(["sweep", "parametrization"]), key=lambda kv: (kv[0][0] != "lr", kv[0][1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    for ax, ((sweep, p), rows) in zip(axes[0], panels, strict=True):
        finite = rows.loss.where(rows.loss < float("inf"))
        for size, line in rows.assign(loss=finite).groupby(axis):
            line = line.sort_values("value")
            ax.plot(line.value, line.loss, "o-", label=f"{axis} {size}")
        # zoom on the minima: diverged and far-off points would flatten the curves that matter
        ax.set_ylim(finite.min() - 0.02, min(finite.max(), finite.min() + 0.6) + 0.02)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("learning rate" if sweep == "lr" else "weight decay")
        ax.set_title(f"{LABELS[p]}: loss vs {sweep}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("final target_val_loss")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
