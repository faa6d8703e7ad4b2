"""Verify μP transfer by measurement: LR × width and WD × width sweeps, μP against SP.

Each grid point is one ordinary training run (the study config's data and budget, only lr, wd,
width and parametrisation changed) in its own process; every run is an MLflow run in the study's
experiment tagged `kind=verify`. The criterion: under μP the best lr stays within one
2× grid step across the widths; under SP it drifts.
"""

from __future__ import annotations

import itertools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from automix.config._study import ConfigError, StudyConfig
from automix.scaling._transfer import quietly, with_values
from automix.study._workspace import Workspace
from automix.tracking._store import Tracker, flatten
from trainer.atomic import write_json
from trainer.config import TrainConfig
from trainer.data import prepare
from trainer.train import TrainingDiverged, run

LR_GRID = tuple(1e-3 * 2**k for k in range(7))  # 2× steps: the resolution the criterion is stated in
WD_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)


@dataclass
class VerifyResult:
    """Every run's loss, the best value per width, and how far the best value drifts."""

    losses: pd.DataFrame  # sweep, parametrization, width, value (lr or wd), loss
    best: pd.DataFrame  # sweep, parametrization, width, value, loss: the argmin per width
    drift: dict[str, int]  # "lr/mup" → grid steps between the smallest and largest best value
    plot: Path
    path: Path

    def transfers(self, sweep: str = "lr", parametrization: str = "mup") -> bool:
        """The criterion: the best value stays within one grid step across all widths."""
        return self.drift[f"{sweep}/{parametrization}"] <= 1


def verify_transfer(
    config: StudyConfig,
    widths: list[int] | tuple[int, ...] = (32, 64, 128, 256),
    lrs: list[float] | tuple[float, ...] = LR_GRID,
    wds: list[float] | tuple[float, ...] = WD_GRID,
    verbose: bool = True,
) -> VerifyResult:
    """LR × width sweep (μP and SP), then WD × width (μP, at the best base-width lr).

    base_width is the smallest width, where μP and SP share every multiplier (they differ only in
    μP's zero-initialised readout and queries). Runs
    `config.search.concurrency` trainings at once, one thread each. Writes `verify_transfer.json`
    (every loss) and `verify_transfer.png` (loss vs lr and wd per width) to `WORK/verify_transfer/`.
    Workers are spawned, so a script calling this needs the `if __name__ == "__main__":` guard.
    """
    if len(widths) < 2 or len(lrs) < 2 or len(wds) < 2:
        raise ConfigError("verify-transfer needs at least two widths, learning rates and weight decays")
    base_width = min(widths)
    base = with_values(config.base_train_config(), {"model.base_width": base_width, "threads": 1})
    prepare(base)  # tokenize and cache once, and fail on bad data before any run starts
    workspace = Workspace.from_config(config)
    work = workspace.path("verify_transfer")
    tracker = workspace.tracker()
    parent = tracker.start_parent("verify-transfer", {"widths": list(widths)}, {"kind": "verify"})
    runner = _Runner(base, tracker, config.search.concurrency, verbose)

    lr_df = runner.sweep("lr", {"learning_rate": lrs, "model.parametrization": ["mup", "sp"]}, widths)
    at_base = lr_df[(lr_df.parametrization == "mup") & (lr_df.width == base_width)]
    best_lr = float(at_base.loc[at_base.loss.idxmin(), "value"])
    fixed = {"learning_rate": best_lr, "model.parametrization": "mup"}
    wd_df = runner.sweep("wd", {"weight_decay": wds}, widths, fixed)
    losses = pd.concat([lr_df, wd_df], ignore_index=True)
    best, drift = summarize(losses, {"lr": lrs, "wd": wds})
    result = VerifyResult(losses, best, drift, work / "verify_transfer.png", work / "verify_transfer.json")
    plot_sweeps(losses, result.plot)
    record = {
        "widths": list(widths),
        "base_width": base_width,
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


def summarize(losses: pd.DataFrame, grids: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The best grid value per sweep, parametrisation and width, and its drift in grid steps.

    Drift is the distance, in grid positions, between the smallest and the largest best value across
    widths: 0 or 1 passes the criterion, 2 or more means the optimum moved by more than one step.
    """
    best = losses.loc[losses.groupby(["sweep", "parametrization", "width"]).loss.idxmin()].reset_index(drop=True)
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


class _Runner:
    """Runs grids of configs in worker processes and tracks each point as an MLflow run."""

    def __init__(self, base: TrainConfig, tracker: Tracker, workers: int, verbose: bool):
        self.base, self.tracker, self.workers, self.verbose = base, tracker, workers, verbose

    def sweep(self, name: str, grid: dict[str, Any], widths, fixed: dict[str, Any] | None = None) -> pd.DataFrame:
        """Every point of `grid` × widths: returns sweep, parametrization, width, value, loss."""
        axis = next(iter(grid))  # the swept optimiser setting: learning_rate or weight_decay
        grid = {**grid, "model.width": list(widths)}
        points = [{**(fixed or {}), **dict(zip(grid, v, strict=True))} for v in itertools.product(*grid.values())]
        points.sort(key=lambda p: -p["model.width"])  # longest runs first: the pool ends together
        configs = [with_values(self.base, p) for p in points]
        rows = []
        # spawn, not fork: a forked child of a process that has run torch can hang in OpenMP.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            futures = {pool.submit(_final_loss, c.model_dump()): (p, c) for p, c in zip(points, configs, strict=True)}
            for future in as_completed(futures):
                point, config = futures[future]
                loss = future.result()
                rows.append(
                    {
                        "sweep": name,
                        "parametrization": config.model.parametrization,
                        "width": config.model.width,
                        "value": point[axis],
                        "loss": loss,
                    }
                )
                self._track(name, config, loss)
                if self.verbose:
                    print(
                        f"{name} {config.model.parametrization} width={config.model.width} "
                        f"{axis}={point[axis]:.4g} target_val_loss={loss:.4f}"
                    )
        return pd.DataFrame(rows)

    def _track(self, sweep: str, config: TrainConfig, loss: float) -> None:
        tags = {
            "kind": "verify",
            "sweep": sweep,
            "width": str(config.model.width),
            "parametrization": config.model.parametrization,
        }
        run_id = quietly(
            self.tracker.start_child, f"verify-{sweep}-w{config.model.width}", flatten(config.model_dump()), tags
        )
        if run_id:
            quietly(self.tracker.log_metrics, run_id, {"target_val_loss": loss}, config.budget.total_tokens)
            quietly(self.tracker.end, run_id, "FINISHED" if loss < float("inf") else "FAILED")


def plot_sweeps(losses: pd.DataFrame, path: Path) -> Path:
    """Final target loss vs lr (μP, SP) and vs wd (μP), one line per width: the classic μP figure."""
    import matplotlib

    matplotlib.use("Agg")  # headless: write a file, never open a window
    import matplotlib.pyplot as plt

    panels = sorted(losses.groupby(["sweep", "parametrization"]), key=lambda kv: (kv[0][0] != "lr", kv[0][1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    for ax, ((sweep, p), rows) in zip(axes[0], panels, strict=True):
        finite = rows.loss.where(rows.loss < float("inf"))
        for width, line in rows.assign(loss=finite).groupby("width"):
            line = line.sort_values("value")
            ax.plot(line.value, line.loss, "o-", label=f"width {width}")
        # zoom on the minima: diverged and far-off points would flatten the curves that matter
        ax.set_ylim(finite.min() - 0.02, min(finite.max(), finite.min() + 0.6) + 0.02)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("learning rate" if sweep == "lr" else "weight decay")
        ax.set_title(f"{'μP' if p == 'mup' else 'SP'}: loss vs {sweep}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("final target_val_loss")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
