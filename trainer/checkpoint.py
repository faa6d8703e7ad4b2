"""Save and reload a trained model with its config, keeping μP base shapes intact."""

from __future__ import annotations

from pathlib import Path

import torch

from trainer.config import TrainConfig
from trainer.model import Transformer, build_model, build_optimizer


def save_checkpoint(
    out_dir: Path, model: Transformer, config: TrainConfig, tokenizer, optimizer: torch.optim.Optimizer | None = None
) -> Path:
    """Write `model.pt` (weights + resolved config, optimiser state if given) and the tokenizer into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.pt"
    tmp = path.with_suffix(".tmp")
    state = {"model": model.state_dict(), "config": config.model_dump(), "vocab_size": tokenizer.vocab_size}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a reader never sees half a checkpoint
    tokenizer.save(out_dir)
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[Transformer, TrainConfig]:
    """Rebuild the model from `model.pt`; base shapes are set without rescaling (mup's rule for reloads)."""
    state = torch.load(path, map_location=device, weights_only=True)
    config = TrainConfig.model_validate(state["config"])
    model = build_model(config.model, state["vocab_size"], config.data.seq_len, init=False)
    model.load_state_dict(state["model"])
    return model.to(device), config


def load_optimizer(path: str | Path, model: Transformer, config: TrainConfig) -> torch.optim.Optimizer:
    """MuAdamW for the reloaded `model` with the saved moments and step counts restored.

    The optimiser is rebuilt rather than unpickled: MuAdamW derives its per-width param groups
    from the base shapes `load_checkpoint` set, so the groups (and their lr/wd) line up with the saved state.
    """
    state = torch.load(path, map_location=next(model.parameters()).device, weights_only=True)
    if "optimizer" not in state:
        raise KeyError(f"{path} holds no optimiser state: save it with save_checkpoint(..., optimizer=...)")
    optimizer = build_optimizer(model, config.optim)
    optimizer.load_state_dict(state["optimizer"])
    return optimizer
