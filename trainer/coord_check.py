"""Coordinate check: do activation scales stay flat as the model grows, over the first training steps?

Along width, under μP every activation coordinate's typical size is independent of width; under
SP with Adam the later activations and logits grow with it. Along depth (fixed width), under
CompleteP the residual stream and the logits stay flat; under μP they grow with L (Dey et al.
2025, Figure 7). Each model trains a few steps on one fixed batch (mup's recipe), and the slope of
log mean|x| against log size is fitted per module and step: 0 is flat, 1 proportional.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from trainer.config import ModelConfig, OptimConfig, TrainConfig
from trainer.data import build_stream
from trainer.model import LABELS, Transformer, build_model, build_optimizer
from trainer.tokenizer import build_tokenizer

Axis = Literal["width", "depth"]
# The parametrisation that should stay flat along each axis, then the one it is contrasted with.
COMPARED: dict[str, tuple[str, str]] = {"width": ("mup", "sp"), "depth": ("completep", "mup")}


def recorded_modules(model: Transformer, axis: Axis) -> dict[str, nn.Module]:
    """The residual stream end to end, by the name it is reported under.

    Along width: the embedding, every block and the readout. Along depth the number of blocks
    differs between models, so only the last one, `blocks.last` (the stream the readout sees).
    """
    blocks = {f"blocks.{i}": block for i, block in enumerate(model.blocks)}
    if axis == "depth":
        blocks = {"blocks.last": model.blocks[-1]}
    return {"wte": model.wte, **blocks, "lm_head": model.lm_head}


def _mean_abs_per_step(
    model: Transformer, batch: tuple[torch.Tensor, torch.Tensor], optim: OptimConfig, steps: int, axis: Axis
) -> dict[str, list[float]]:
    """Train `steps` steps on one batch; mean |output| of each recorded module at each step's forward."""
    seen: dict[str, list[float]] = {}

    def record(name: str):
        def hook(_module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
            seen.setdefault(name, []).append(out.abs().mean().item())

        return hook

    hooks = [module.register_forward_hook(record(name)) for name, module in recorded_modules(model, axis).items()]
    optimizer = build_optimizer(model, optim)
    for _ in range(steps):
        _, loss = model(*batch)
        optimizer.zero_grad()
        loss.backward()  # no clipping: the check is about what the parametrisation's updates do
        optimizer.step()
    for hook in hooks:
        hook.remove()
    return seen


def coord_check(
    config: TrainConfig,
    sizes: list[int] | tuple[int, ...],
    parametrizations: tuple[str, ...] | None = None,
    steps: int = 4,
    lr: float | None = None,
    axis: Axis = "width",
) -> pd.DataFrame:
    """Mean |x| of each recorded module at steps 1..`steps` (t=1 is at init), per size and parametrisation.

    Args:
        config: the run whose first training batch, optimiser settings and model are used; its
            `base_width` (and `base_depth`) anchor μP (and CompleteP).
        sizes: the widths, or along depth the depths, to build.
        parametrizations: default `COMPARED[axis]`: μP and SP along width, CompleteP and μP along depth.
        steps: forward passes recorded; the first is at init.
        lr: overrides `config.optim.learning_rate`.
        axis: "width" or "depth".

    Returns:
        Columns parametrization, `axis` (the size), module, t, l1. Every model is drawn from seed 0.
    """
    if config.threads:
        torch.set_num_threads(config.threads)  # as `trainer.train.run` does
    tokenizer = build_tokenizer(config.data)
    x, y = build_stream(config, tokenizer).batch(0)
    optim = config.optim.model_copy(update={"learning_rate": lr or config.optim.learning_rate})
    rows = []
    for p in parametrizations or COMPARED[axis]:
        for size in sizes:
            # validated (not model_copy): a width that n_heads does not divide fails here, by name
            cfg = ModelConfig.model_validate({**config.model.model_dump(), axis: size, "parametrization": p})
            torch.manual_seed(0)
            model = build_model(cfg, tokenizer.vocab_size, config.data.seq_len).train()
            for module, l1s in _mean_abs_per_step(model, (x, y), optim, steps, axis).items():
                rows += [
                    {"parametrization": p, axis: size, "module": module, "t": t, "l1": v} for t, v in enumerate(l1s, 1)
                ]
    return pd.DataFrame(rows)


def _axis(df: pd.DataFrame) -> Axis:
    return "depth" if "depth" in df.columns else "width"


def slopes(df: pd.DataFrame) -> pd.DataFrame:
    """Least-squares slope of log2 mean|x| vs log2 size (width or depth), per parametrisation, module and step.

    Args:
        df: `coord_check`'s result.

    Returns:
        Columns parametrization, module, t, slope. All-zero activations (the zero-initialised readout
        at t=1) have no scale and are skipped.
    """
    axis = _axis(df)
    rows = []
    for (p, module, t), g in df.groupby(["parametrization", "module", "t"]):
        if (g.l1 <= 0).any():
            continue
        slope = np.polyfit(np.log2(g[axis].astype(float)), np.log2(g.l1), 1)[0]
        rows.append({"parametrization": p, "module": module, "t": t, "slope": slope})
    return pd.DataFrame(rows)


def width_slopes(df: pd.DataFrame) -> pd.DataFrame:
    """`slopes` of a width check (the name benchmarks/gpu_check.py imports)."""
    return slopes(df)


def plot_coord_check(df: pd.DataFrame, path: str | Path) -> Path:
    """mean |x| vs width or depth (log-log), one panel per parametrisation and step, a line per module."""
    import matplotlib

    matplotlib.use("Agg")  # headless: write a file, never open a window
    import matplotlib.pyplot as plt

    axis = _axis(df)
    params, steps = sorted(df.parametrization.unique()), sorted(df.t.unique())
    fig, axes = plt.subplots(
        len(params), len(steps), figsize=(3.2 * len(steps), 3 * len(params)), squeeze=False, sharey=True
    )
    for i, p in enumerate(params):
        for j, t in enumerate(steps):
            ax = axes[i][j]
            for module, g in df[(df.parametrization == p) & (df.t == t)].groupby("module", sort=False):
                g = g.sort_values(axis)
                ax.plot(g[axis], g.l1.where(g.l1 > 0), "o-", ms=3, label=module)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{LABELS[p]}, step {t}", fontsize=9)
            ax.set_xlabel(axis)
    for row in axes:
        row[0].set_ylabel("mean |x|")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
