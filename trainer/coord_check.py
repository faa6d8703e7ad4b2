"""Coordinate check: do activation scales stay flat with width over the first training steps?

Under μP the typical size of every activation coordinate (embedding output, each block's output,
the logits) is independent of width at every step; under SP with Adam, updates to hidden matrices
add up over the width and the later activations and logits grow with it. This trains models of
several widths for a few steps on one fixed batch (mup's `_get_coord_data` recipe, with our
model, data and MuAdamW) and fits, for each module and step, the slope of log mean|x| against
log width: about 0 means flat, 1 means proportional to width.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from mup.coord_check import _get_coord_data
from torch import nn

from trainer.config import ModelConfig, TrainConfig
from trainer.data import build_stream
from trainer.model import Transformer, build_model, build_optimizer
from trainer.tokenizer import build_tokenizer


class _Logits(nn.Module):
    """mup's helper calls `model(x)` and wants logits, not our (logits, loss) pair."""

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)[0]


def _recorded(name: str) -> bool:
    """Embedding output, each block's output and the logits: the residual stream end to end."""
    parts = name.split(".")
    return name in ("model.wte", "model.lm_head") or (len(parts) == 3 and parts[1] == "blocks")


def coord_check(
    config: TrainConfig,
    widths: list[int] | tuple[int, ...],
    parametrizations: tuple[str, ...] = ("mup", "sp"),
    steps: int = 4,
    lr: float | None = None,
) -> pd.DataFrame:
    """Mean |x| of each recorded module at steps 1..`steps` (t=1 is at init), per width and parametrisation.

    Uses the first batch of `config`'s training stream and `config.optim` (lr overridable), with
    `config.model.base_width` as μP's base; mup's helper seeds torch (seed 0) before the first model.
    Columns: parametrization, width, module, t, l1.
    """
    if config.threads:
        torch.set_num_threads(config.threads)  # as `trainer.train.run` does
    tokenizer = build_tokenizer(config.data)
    x, y = build_stream(config, tokenizer).batch(0)
    optim = config.optim.model_copy(update={"learning_rate": lr or config.optim.learning_rate})
    frames = []
    for p in parametrizations:

        def lazy(width: int, p: str = p):
            # validated (not model_copy): a width that n_heads does not divide fails here, by name
            cfg = ModelConfig.model_validate({**config.model.model_dump(), "width": width, "parametrization": p})
            return lambda: _Logits(build_model(cfg, tokenizer.vocab_size, config.data.seq_len))

        df = _get_coord_data(
            {w: lazy(w) for w in widths},
            [(x, y.reshape(-1))],
            lambda m: build_optimizer(m.model, optim),
            nsteps=steps,
            flatten_output=True,
            filter_module_by_name=_recorded,
            cuda=False,
            show_progress=False,
            nseeds=1,
            fix_data=True,
        )
        df["parametrization"] = p
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out["module"] = out["module"].str.removeprefix("model.")
    return out[["parametrization", "width", "module", "t", "l1"]]


def width_slopes(df: pd.DataFrame) -> pd.DataFrame:
    """Least-squares slope of log2 mean|x| vs log2 width, per parametrisation, module and step.

    All-zero activations (μP's zero-initialised readout at t=1) have no scale and are skipped.
    """
    rows = []
    for (p, module, t), g in df.groupby(["parametrization", "module", "t"]):
        if (g.l1 <= 0).any():
            continue
        slope = np.polyfit(np.log2(g.width.astype(float)), np.log2(g.l1), 1)[0]
        rows.append({"parametrization": p, "module": module, "t": t, "slope": slope})
    return pd.DataFrame(rows)


def plot_coord_check(df: pd.DataFrame, path: str | Path) -> Path:
    """mean |x| vs width (log-log), one panel per parametrisation and step, a line per module."""
    import matplotlib

    matplotlib.use("Agg")  # headless: write a file, never open a window
    import matplotlib.pyplot as plt

    params, steps = sorted(df.parametrization.unique()), sorted(df.t.unique())
    fig, axes = plt.subplots(
        len(params), len(steps), figsize=(3.2 * len(steps), 3 * len(params)), squeeze=False, sharey=True
    )
    for i, p in enumerate(params):
        for j, t in enumerate(steps):
            ax = axes[i][j]
            for module, g in df[(df.parametrization == p) & (df.t == t)].groupby("module", sort=False):
                g = g.sort_values("width")
                ax.plot(g.width, g.l1.where(g.l1 > 0), "o-", ms=3, label=module)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{'μP' if p == 'mup' else 'SP'}, step {t}", fontsize=9)
            ax.set_xlabel("width")
    for row in axes:
        row[0].set_ylabel("mean |x|")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
