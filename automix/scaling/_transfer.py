"""Transfer: train a proxy trial's settings at wider (and deeper) models (`transfer`).

lr and wd are stated at the base shape and copied unchanged (μP in width, CompleteP in depth);
the data budget keeps U, E and r, or moves to another U' or T' by `budget_rule`. `target_config`
has the rules; docs/transfer.md and docs/design.md ("μP transfer") the reasons.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from optuna.trial import FrozenTrial
from pydantic import ValidationError

from automix.config._space import SearchSpace, load_space
from automix.config._study import StudyConfig, format_validation_error
from automix.errors import ConfigError
from automix.study._results import best_trials
from automix.study._workspace import Workspace
from automix.tracking._store import Tracker, flatten
from automix.trial._objective import TrainerObjective
from trainer.atomic import write_json
from trainer.config import TrainConfig
from trainer.model import build_model, build_optimizer, depth_mult
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
    """The lr, weight decay and ε MuAdamW actually gives a hidden matrix and the embedding at this shape.

    Built on the meta device: no memory, however wide the model.

    Args:
        config: the run at its target shape.

    Returns:
        width_mult, depth_mult, branch_mult (the residual branches' multiplier), hidden_lr, hidden_wd,
        hidden_lr_x_wd, hidden_eps, embedding_lr, embedding_wd.
    """
    with torch.device("meta"):
        model = build_model(config.model, _PROBE_VOCAB, config.data.seq_len, init=False)
    opt = build_optimizer(model, config.optim)

    def group(p: torch.nn.Parameter) -> dict:
        return next(g for g in opt.param_groups if any(q is p for q in g["params"]))

    hidden, embedding = group(model.blocks[0].fc.weight), group(model.wte.weight)
    return {
        "width_mult": model.blocks[0].fc.weight.infshape.width_mult(),
        "depth_mult": depth_mult(config.model),
        "branch_mult": model.blocks[0].branch_mult,
        "hidden_lr": hidden["lr"],
        "hidden_wd": hidden["weight_decay"],
        "hidden_lr_x_wd": hidden["lr"] * hidden["weight_decay"],
        "hidden_eps": hidden["eps"],
        "embedding_lr": embedding["lr"],
        "embedding_wd": embedding["weight_decay"],
    }


def quietly(method, *args: Any, **kwargs: Any) -> Any:
    """Call a tracking method; log and swallow its errors: losing a metric is better than losing a run."""
    try:
        return method(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - any store error must not reach training
        log.warning("MLflow tracking failed in %s: %s", getattr(method, "__name__", method), e)
        return None


def with_values(config: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """`config` with dotted `values` written in and validated; a bad value is a ConfigError."""
    try:
        return SearchSpace({}).apply(values, config)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e)) from None


def budget_rule(
    proxy: TrainConfig, unique_tokens: int | None = None, train_tokens: int | None = None
) -> tuple[float, dict[str, Any]]:
    """The budget-transfer rule: the target's data budget and weight decay for U' or T'.

    E and r are kept, so U and T change by one factor k (U'/U, or T'/T), and weight decay becomes
    wd/k. Why: AdamW's timescale τ = 1/(lr·wd) steps (lr·wd is PyTorch AdamW's per-step decay, the
    same at every width under μP) is taken to be best at a constant number of epochs (Wang &
    Aitchison 2024); at the same lr, batch and E an epoch is k times the steps, so lr·wd must be k
    times smaller.

    Assumes: the best τ is constant in epochs, not a power law in tokens per parameter ("Power
    Lines", Bergsma et al. 2025, which would also move wd with the model size); the target keeps the
    proxy's lr, batch size and sequence length. E is kept for want of a rule, but the measured best E
    grows with U (`transfer` warns). Measured in BENCHMARKS.md "Budget transfer"
    (`benchmarks/budget_transfer.py`; docs/transfer.md).

    Args:
        proxy: the proxy trial's trainer config.
        unique_tokens: U' at the target.
        train_tokens: T' at the target; at most one of the two (both would change E, which
            nothing measures).

    Returns:
        k, and the dotted config values to write (budget.unique_tokens, budget.train_tokens in
        `fixed_tokens` mode, optim.weight_decay): (1.0, {}) when neither budget is given.
    """
    if unique_tokens is not None and train_tokens is not None:
        raise ConfigError("transfer: give unique_tokens or train_tokens, not both (E is kept: one fixes the other)")
    given = unique_tokens if unique_tokens is not None else train_tokens
    if given is None:
        return 1.0, {}
    if given < 1:
        raise ConfigError(f"transfer: a target budget is at least 1 token, not {given}")
    budget = proxy.budget
    if unique_tokens is not None:
        k = unique_tokens / budget.unique_tokens
        train_tokens = round(budget.total_tokens * k)
    else:
        k = train_tokens / budget.total_tokens
        unique_tokens = round(budget.unique_tokens * k)
    values: dict[str, Any] = {
        "budget.unique_tokens": unique_tokens,
        "optim.weight_decay": proxy.optim.weight_decay / k,  # constant timescale in epochs
    }
    if budget.mode == "fixed_tokens":  # E = (1-r)·T/U is derived there: T moves with U to keep it
        values["budget.train_tokens"] = train_tokens
    return k, values


def target_config(
    proxy: TrainConfig,
    width: int,
    train_tokens: int | None = None,
    depth: int | None = None,
    unique_tokens: int | None = None,
) -> TrainConfig:
    """The proxy's trainer config at `width` (and `depth`, and another budget).

    - `learning_rate` and `weight_decay` are stated at `base_width` and copied unchanged. MuAdamW
      gives each hidden matrix lr/m and wd·m (m = width/base_width), so its per-step decay lr·wd is
      the base width's; embeddings, norms and the readout keep lr (`effective_lr_wd` reads them back).
    - Depth (`parametrization: completep`): also stated at `base_depth` and copied unchanged; the
      model scales each residual branch by base_depth/depth and the blocks' AdamW ε (CompleteP,
      α = 1). Under μP or SP a new depth is only a new model: nothing promises the optimum stays.
    - The data budget keeps U, E and r; another U' or T' keeps E and r and rescales wd (`budget_rule`).

    Args:
        proxy: the proxy trial's trainer config; lr and wd stay as stated (at its base shape).
        width: the target width.
        train_tokens: T' at the target: E and r kept, U and wd rescaled (`budget_rule`).
        depth: the target depth (default: the proxy's).
        unique_tokens: U' at the target: E and r kept, T and wd rescaled (`budget_rule`).

    Returns:
        The validated target config; a ConfigError if a value does not fit (e.g. heads ∤ width).
    """
    values: dict[str, Any] = {"model.width": width, **budget_rule(proxy, unique_tokens, train_tokens)[1]}
    if depth is not None:
        values["model.depth"] = depth
    return with_values(proxy, values)


def study_config_from_tracking(study: str, work_dir: Path) -> StudyConfig:
    """The resolved config a search logged (`config.json` of its MLflow parent run) in `work_dir`."""
    workspace = Workspace.of(study, work_dir)
    tracker = Tracker.existing(workspace.tracking_uri, study)
    config = tracker.search_config(study) if tracker is not None else None
    if config is None:
        raise ConfigError(
            f"no search of study '{study}' tracked in {workspace.tracking_uri}: pass --config CONFIG instead"
        )
    # the directory the study was found in wins over the one recorded (a moved or copied study)
    return StudyConfig.model_validate({**config, "work_dir": str(work_dir)})


def source_trial(config: StudyConfig, trial: int | None = None) -> FrozenTrial:
    """Trial number `trial` of the study, or its best COMPLETE trial (first metric if several)."""
    study = Workspace.from_config(config).load_study()
    if trial is not None:
        found = [t for t in study.trials if t.number == trial]
        if not found or not found[0].params:
            raise ConfigError(f"study '{config.study}' has no trial {trial} with params")
        return found[0]
    best = best_trials(study, config.search)
    if not best:
        raise ConfigError(f"study '{config.study}' has no COMPLETE trial to transfer")
    return best[0]


def transfer(
    config: StudyConfig,
    widths: list[int] | tuple[int, ...],
    trial: int | None = None,
    train_tokens: int | None = None,
    verbose: bool = True,
    depth: int | None = None,
    unique_tokens: int | None = None,
) -> TransferResult:
    """Train the best (or given) trial of `config`'s study at each of `widths` (`target_config`'s rules).

    Each run is an MLflow run under the study's experiment (parent `transfer-trial-N`, tags
    `kind=transfer`, `width`, `depth`, `source_trial`) with its checkpoint in
    `WORK/transfer/trial-N/wW/` (`wWdL/` with a `depth`); `WORK/transfer.json` records the rule,
    the configs' budgets and the final metrics.

    Args:
        config: the study config.
        widths: the target widths.
        trial: the trial to carry (default: the best COMPLETE one).
        train_tokens: T' at the target (`budget_rule`).
        verbose: print each evaluation.
        depth: the target depth (default: the proxy's); a warning unless the study is completep.
        unique_tokens: U' at the target (`budget_rule`); not with `train_tokens`.

    Returns:
        What was trained, with its metrics and checkpoints.

    Example:
        >>> result = transfer(load_config("examples/ar_en_cpu.yaml"), [128, 256])  # doctest: +SKIP
        >>> [r["metrics"]["target_val_loss"] for r in result.runs]  # doctest: +SKIP
    """
    if not widths:
        raise ConfigError("transfer: give at least one target width (--widths 256 512)")
    workspace = Workspace.from_config(config)
    source = source_trial(config, trial)
    base = config.base_train_config()
    space = load_space(config.search.space, base)
    out = workspace.transfer_dir(source.number)
    proxy = TrainerObjective(base, space, workspace.trial_dir).config_for(source.params)
    targets = [target_config(proxy, w, train_tokens, depth, unique_tokens) for w in widths]
    if budget_rule(proxy, unique_tokens, train_tokens)[0] > 1:
        log.warning(
            "transfer keeps E = %.3g at the larger budget: measured at 4x U, the best E at least doubled "
            "(docs/transfer.md, 'Epochs do not carry'): search epochs at the target",
            proxy.budget.effective_epochs,
        )
    if depth not in (None, proxy.model.depth) and proxy.model.parametrization != "completep":
        log.warning(
            "transfer to depth %d under parametrization %s: nothing keeps the best lr in place across depth "
            "(parametrization completep does)",
            depth,
            proxy.model.parametrization,
        )

    tracker = workspace.tracker()
    tags = {"kind": "transfer", "source_trial": str(source.number), "study": config.study}
    parent = tracker.start_parent(f"transfer-trial-{source.number}", dict(source.params), tags)
    result = TransferResult(config.study, source.number, source.value, dict(source.params))
    for cfg in targets:
        cfg = cfg.model_copy(update={"out_dir": str(out / _shape_name(cfg, depth is not None))})
        result.runs.append(_train_one(tracker, cfg, tags, verbose, depth is not None))
    quietly(tracker.end, parent, "FINISHED")

    result.path = workspace.path("transfer.json")
    k = budget_rule(proxy, unique_tokens, train_tokens)[0]
    moved = "U" if unique_tokens is not None else "T"
    record = {
        **asdict(result),
        "path": str(result.path),
        "proxy_width": proxy.model.width,
        "proxy_depth": proxy.model.depth,
    }
    record["rule"] = {
        "lr_wd": "stated at base_width, copied unchanged; MuAdamW: hidden lr/m, wd·m"
        + (
            "; stated at base_depth too: residual branches × base_depth/depth, block ε/(m·m_L)"
            if proxy.model.parametrization == "completep"
            else ""
        ),
        "budget": "U, E, r kept" if k == 1 else f"E, r kept; U and T ×k, wd/k (k = {moved}'/{moved} = {k:.4g})",
    }
    write_json(result.path, record)
    return result


def _shape_name(cfg: TrainConfig, with_depth: bool) -> str:
    """`wW`, or `wWdL` when the transfer names a depth: the run's folder and MLflow name."""
    return f"w{cfg.model.width}" + (f"d{cfg.model.depth}" if with_depth else "")


def _train_one(
    tracker: Tracker, cfg: TrainConfig, tags: dict[str, str], verbose: bool, with_depth: bool
) -> dict[str, Any]:
    """One transfer run, tracked as a child run; tracking errors never stop training."""
    width, shape = cfg.model.width, _shape_name(cfg, with_depth)
    run_tags = {**tags, "width": str(width), "depth": str(cfg.model.depth)}
    run_id = quietly(tracker.start_child, f"transfer-{shape}", flatten(cfg.model_dump()), run_tags)

    def report(metrics: dict) -> None:
        if run_id:
            quietly(tracker.log_metrics, run_id, metrics, int(metrics["tokens"]))
        if verbose:
            print(f"{shape} tokens={metrics['tokens']} target_val_loss={metrics['target_val_loss']:.4f}")

    try:
        outcome = run(cfg, report=report)
    except BaseException:
        if run_id:
            quietly(tracker.end, run_id, "FAILED", tags={"state": "FAIL"})
        raise
    if run_id:
        quietly(tracker.end, run_id, "FINISHED", tags={"state": "COMPLETE"})
    budget = cfg.budget
    return {
        "width": width,
        "depth": cfg.model.depth,
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
