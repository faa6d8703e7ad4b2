"""μP transfer: train a proxy trial's settings at wider models (`transfer`), and check that they hold.

The rule (DESIGN §5, README "μP: what transfers"):
- `learning_rate` and `weight_decay` are stated at `base_width` and copied unchanged to every width.
  MuAdamW then gives each hidden matrix lr/m and wd·m (m = width/base_width), so its per-step decay
  lr·wd is the base width's; embeddings, norms and the readout keep lr (the readout's 1/m is in
  its forward). `effective_lr_wd` reads these numbers back from a real optimiser.
- The data budget keeps the proxy's repetition rate: same unique tokens U, epochs E and mix ratio r.
- A larger token budget T' > T at the target keeps E and r, so U grows by k = T'/T. AdamW's
  timescale 1/(lr·wd) is about constant in epochs (Wang & Aitchison 2024); an epoch is k times
  more steps, so weight decay becomes wd/k (lr is unchanged by μP).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import optuna.distributions as od
import pandas as pd
import torch
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState
from pydantic import ValidationError

from automix.config import ConfigError, StudyConfig, format_validation_error
from automix.objective import TrainerObjective
from automix.samplers import grid_size
from automix.space import SearchSpace, load_space
from automix.study import open_study_storage
from automix.tracking import Tracker, _safe, default_tracking_uri, flatten
from trainer.config import TrainConfig
from trainer.model import build_model, build_optimizer
from trainer.train import run

log = logging.getLogger(__name__)
# MuAdamW's grouping depends on which dimensions scale with width, not on the vocabulary size.
_PROBE_VOCAB = 257


@dataclass
class TransferResult:
    """What `transfer` did: the source trial, and one entry per target width."""

    study: str
    source_trial: int
    source_value: float | None
    params: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None


def effective_lr_wd(config: TrainConfig) -> dict[str, float]:
    """The lr and weight decay MuAdamW actually gives a hidden matrix and the embedding at this width.

    Built on the meta device: no memory, however wide the model.
    """
    with torch.device("meta"):
        model = build_model(config.model, _PROBE_VOCAB, config.data.seq_len, init=False)
    opt = build_optimizer(model, config.optim)

    def group(p: torch.nn.Parameter) -> dict:
        return next(g for g in opt.param_groups if any(q is p for q in g["params"]))

    hidden, embedding = group(model.blocks[0].fc.weight), group(model.wte.weight)
    return {
        "width_mult": model.blocks[0].fc.weight.infshape.width_mult(),
        "hidden_lr": hidden["lr"],
        "hidden_wd": hidden["weight_decay"],
        "hidden_lr_x_wd": hidden["lr"] * hidden["weight_decay"],
        "embedding_lr": embedding["lr"],
        "embedding_wd": embedding["weight_decay"],
    }


def with_values(config: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """`config` with dotted `values` written in and validated; a bad value is a ConfigError."""
    try:
        return SearchSpace({}).apply(values, config)
    except ValidationError as e:
        raise ConfigError(f"transfer: {format_validation_error(e)}") from None


def target_config(proxy: TrainConfig, width: int, train_tokens: int | None = None) -> TrainConfig:
    """The proxy's trainer config at `width`; with `train_tokens`, the budget rule of the module doc."""
    values: dict[str, Any] = {"model.width": width}
    if train_tokens is not None:
        budget = proxy.budget
        k = train_tokens / budget.total_tokens
        values["budget.unique_tokens"] = round(budget.unique_tokens * k)  # E and r kept
        if budget.mode == "fixed_tokens":
            values["budget.train_tokens"] = train_tokens
        values["optim.weight_decay"] = proxy.optim.weight_decay / k  # constant timescale in epochs
    return with_values(proxy, values)


def study_config_from_tracking(study: str, work_dir: Path) -> StudyConfig:
    """The resolved config a search logged (`config.json` of its MLflow parent run) in `work_dir`."""
    uri = default_tracking_uri(work_dir)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(study) if (work_dir / "mlflow.db").exists() else None
    runs = (
        client.search_runs(
            [experiment.experiment_id],
            filter_string=f"attributes.run_name = 'search-{study}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if experiment
        else []
    )
    if not runs:
        raise ConfigError(f"no search of study '{study}' tracked in {uri}: pass --config CONFIG instead")
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(runs[0].info.run_id, "config.json", tmp)
        return StudyConfig.model_validate(json.loads(Path(path).read_text()))


def source_trial(config: StudyConfig, trial: int | None = None) -> FrozenTrial:
    """Trial number `trial` of the study, or its best COMPLETE trial (by `search.metric`/`mode`)."""
    url = f"sqlite:///{config.work_path / 'optuna.db'}"
    if not (config.work_path / "optuna.db").exists():
        raise ConfigError(f"no study in {config.work_path}: run `automix search` first")
    try:
        trials = optuna.load_study(study_name=config.study, storage=open_study_storage(url)).trials
    except KeyError:
        raise ConfigError(f"study '{config.study}' is not in {url}") from None
    if trial is not None:
        found = [t for t in trials if t.number == trial]
        if not found or not found[0].params:
            raise ConfigError(f"study '{config.study}' has no trial {trial} with params")
        return found[0]
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        raise ConfigError(f"study '{config.study}' has no COMPLETE trial to transfer")
    sign = 1 if config.search.mode == "min" else -1
    return min(done, key=lambda t: sign * t.value)


def transfer(
    config: StudyConfig,
    widths: list[int] | tuple[int, ...],
    trial: int | None = None,
    train_tokens: int | None = None,
    verbose: bool = True,
) -> TransferResult:
    """Train the best (or given) trial of `config`'s study at each of `widths`; see the module doc.

    Each run is an MLflow run under the study's experiment (parent `transfer-trial-N`, tags
    `kind=transfer`, `width`, `source_trial`) with its checkpoint in `WORK/transfer/trial-N/wW/`;
    `WORK/transfer.json` records the rule, the configs' budgets and the final metrics.
    """
    if not widths:
        raise ConfigError("transfer: give at least one target width (--widths 256 512)")
    source = source_trial(config, trial)
    base = config.base_train_config()
    space = load_space(config.search.space, base)
    out = config.work_path / "transfer" / f"trial-{source.number:04d}"
    proxy = TrainerObjective(base, space, out).config_for(source.params)
    targets = [target_config(proxy, w, train_tokens) for w in widths]

    uri = config.tracking.uri or default_tracking_uri(config.work_path)
    tracker = Tracker(uri, config.tracking.experiment or config.study, config.work_path / "mlartifacts")
    tags = {"kind": "transfer", "source_trial": str(source.number), "study": config.study}
    parent = tracker.start_parent(f"transfer-trial-{source.number}", dict(source.params), tags)
    result = TransferResult(config.study, source.number, source.value, dict(source.params))
    for cfg in targets:
        cfg = cfg.model_copy(update={"out_dir": str(out / f"w{cfg.model.width}")})
        result.runs.append(_train_one(tracker, cfg, tags, verbose))
    _safe(tracker.end)(parent, "FINISHED")

    result.path = config.work_path / "transfer.json"
    record = {**asdict(result), "path": str(result.path), "proxy_width": proxy.model.width}
    record["rule"] = {
        "lr_wd": "stated at base_width, copied unchanged; MuAdamW: hidden lr/m, wd·m",
        "budget": "U, E, r kept"
        if train_tokens is None
        else f"E, r kept; U×k, wd/k (k = T'/T = {train_tokens / proxy.budget.total_tokens:.4g})",
    }
    tmp = result.path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, result.path)  # atomic: a reader never sees half a file
    return result


def _train_one(tracker: Tracker, cfg: TrainConfig, tags: dict[str, str], verbose: bool) -> dict[str, Any]:
    """One transfer run, tracked as a child run; tracking errors never stop training."""
    width = cfg.model.width
    run_tags = {**tags, "width": str(width)}
    run_id = _safe(tracker.start_child)(f"transfer-w{width}", flatten(cfg.model_dump()), run_tags)

    def report(metrics: dict) -> None:
        if run_id:
            _safe(tracker.log_metrics)(run_id, metrics, int(metrics["tokens"]))
        if verbose:
            print(f"w{width} tokens={metrics['tokens']} target_val_loss={metrics['target_val_loss']:.4f}")

    try:
        outcome = run(cfg, report=report)
    except BaseException:
        if run_id:
            _safe(tracker.end)(run_id, "FAILED", tags={"state": "FAIL"})
        raise
    if run_id:
        _safe(tracker.end)(run_id, "FINISHED", tags={"state": "COMPLETE"})
    budget = cfg.budget
    return {
        "width": width,
        "unique_tokens": budget.unique_tokens,
        "epochs": budget.effective_epochs,
        "mix_ratio": budget.mix_ratio,
        "train_tokens": budget.total_tokens,
        "learning_rate": cfg.optim.learning_rate,
        "weight_decay": cfg.optim.weight_decay,
        "effective": effective_lr_wd(cfg),
        "metrics": outcome.metrics,
        "checkpoint": outcome.checkpoint_path,
        "mlflow_run_id": run_id,
    }


LR_GRID = tuple(1e-3 * 2**k for k in range(7))  # 2× steps: the resolution the criterion is stated in
WD_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)


@dataclass
class VerifyResult:
    """LR × width and WD × width sweeps: every run's loss, the best value per width, the drift."""

    losses: pd.DataFrame  # sweep, parametrization, width, value (lr or wd), loss
    best: pd.DataFrame  # sweep, parametrization, width, best value
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
    """LR × width sweep (μP and SP), then WD × width (μP, at the best base-width lr), on the config's data.

    The sweeps are grid searches (`automix.search`: Optuna study, MLflow runs, resumable) in
    `WORK/verify_transfer/{lr,wd}`; base_width is the smallest width, where μP and SP coincide.
    Writes `verify_transfer.json` and `verify_transfer.png` there.
    """
    if len(widths) < 2 or len(lrs) < 2:
        raise ConfigError("verify-transfer needs at least two widths and two learning rates")
    base = min(widths)
    work = config.work_path / "verify_transfer"
    lr_space = _space(
        {"learning_rate": lrs, "model.width": widths, "model.parametrization": ["mup", "sp"]},
        {"model.base_width": base},
    )
    lr_df = _sweep(config, lr_space, "lr", work, verbose)
    mup_base = lr_df[(lr_df.parametrization == "mup") & (lr_df.width == base)]
    best_lr = float(mup_base.loc[mup_base.loss.idxmin(), "value"])
    wd_space = _space(
        {"weight_decay": wds, "model.width": widths},
        {"model.base_width": base, "model.parametrization": "mup", "learning_rate": best_lr},
    )
    losses = pd.concat([lr_df, _sweep(config, wd_space, "wd", work, verbose)], ignore_index=True)
    best = losses.loc[losses.groupby(["sweep", "parametrization", "width"]).loss.idxmin()]
    best = best[["sweep", "parametrization", "width", "value", "loss"]].reset_index(drop=True)
    grids = {"lr": sorted(lrs), "wd": sorted(wds)}
    drift = {
        f"{sweep}/{p}": max(idx) - min(idx)
        for (sweep, p), rows in best.groupby(["sweep", "parametrization"])
        for idx in [[grids[sweep].index(v) for v in rows.value]]
    }
    result = VerifyResult(losses, best, drift, work / "verify_transfer.png", work / "verify_transfer.json")
    plot_sweeps(losses, result.plot)
    record = {
        "widths": list(widths),
        "base_width": base,
        "wd_sweep_lr": best_lr,
        "drift_grid_steps": drift,
        "best": best.to_dict("records"),
        "losses": losses.to_dict("records"),
    }
    result.path.write_text(json.dumps(record, indent=2))
    return result


def _space(grid: dict[str, Any], fixed: dict[str, Any]) -> SearchSpace:
    return SearchSpace({k: od.CategoricalDistribution(list(v)) for k, v in grid.items()}, fixed, "verify")


def _sweep(config: StudyConfig, space: SearchSpace, name: str, work: Path, verbose: bool) -> pd.DataFrame:
    """Run one grid (resuming a previous one) and return sweep, parametrization, width, value, loss."""
    from automix.search import search  # Ray is only imported when a sweep actually runs

    result = search(
        config,
        space,
        study=f"{config.study}-{name}-width",
        work_dir=work / name,
        sampler="grid",
        scheduler="none",
        n_trials=grid_size(space),
        resume=True,
        verbose=verbose,
    )
    df = result.trials
    param = "learning_rate" if name == "lr" else "weight_decay"
    fixed = space.fixed.get("model.parametrization")
    out = pd.DataFrame(
        {
            "sweep": name,
            "parametrization": df["params_model.parametrization"] if fixed is None else fixed,
            "width": df["params_model.width"].astype(int),
            "value": df[f"params_{param}"].astype(float),
            # a diverged (FAIL) run counts as the worst loss, not as a missing point
            "loss": df["value"].where(df["state"] == "COMPLETE").fillna(float("inf")),
        }
    )
    return out.groupby(["sweep", "parametrization", "width", "value"], as_index=False).loss.min()


def plot_sweeps(losses: pd.DataFrame, path: Path) -> Path:
    """Final target loss vs lr (μP, SP) and vs wd (μP), one line per width: the classic μP figure."""
    import matplotlib

    matplotlib.use("Agg")  # headless: write a file, never open a window
    import matplotlib.pyplot as plt

    panels = list(losses.groupby(["sweep", "parametrization"], sort=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    finite = losses[losses.loss < float("inf")].loss
    for ax, ((sweep, p), rows) in zip(axes[0], panels, strict=True):
        for width, line in rows.groupby("width"):
            line = line.sort_values("value")
            ax.plot(line.value, line.loss.where(line.loss < float("inf")), "o-", label=f"width {width}")
        ax.set_xscale("log", base=2)
        ax.set_ylim(finite.min() - 0.02, min(finite.max(), finite.min() + 1.0) + 0.02)
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
