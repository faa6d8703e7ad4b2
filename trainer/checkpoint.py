"""Save and reload models and training state, keeping μP base shapes intact.

- `model.pt`: the final weights + resolved config (what export and transfer read).
- `state.pt`: everything a run needs to continue exactly where it stopped (model, optimiser,
  schedule, progress counters, RNG), written periodically and atomically.
- `result.json`: final metrics and history of a finished run, so a re-run returns it untrained.
All loads use `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from trainer.atomic import atomic_write, write_json
from trainer.config import TrainConfig, fingerprint
from trainer.model import Transformer, build_model


def _save(obj: dict, path: Path) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_checkpoint(out_dir: Path, model: Transformer, config: TrainConfig, tokenizer) -> Path:
    """Write `model.pt` (weights + resolved config) and the tokenizer into `out_dir`."""
    path = _save(
        {"model": model.state_dict(), "config": config.model_dump(), "vocab_size": tokenizer.vocab_size},
        out_dir / "model.pt",
    )
    tokenizer.save(out_dir)
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[Transformer, TrainConfig]:
    """Rebuild the model from `model.pt`; base shapes are set without rescaling (mup's rule for reloads)."""
    state = torch.load(path, map_location=device, weights_only=True)
    config = TrainConfig.model_validate(state["config"])
    model = build_model(config.model, state["vocab_size"], config.data.seq_len, init=False)
    model.load_state_dict(state["model"])
    return model.to(device), config


def save_state(out_dir: Path, config: TrainConfig, model, optimizer, scheduler, progress: dict) -> None:
    """Write `state.pt`: enough to continue the run bit for bit.

    `progress` is the loop's counters as a plain dict (`dataclasses.asdict` of the loop state), so
    `torch.load(weights_only=True)` reads it back.
    """
    state = {
        "fingerprint": fingerprint(config),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "progress": progress,
        "rng": torch.get_rng_state(),
    }
    _save(state, out_dir / "state.pt")


def load_state(directory: Path, config: TrainConfig, model, optimizer, scheduler) -> dict | None:
    """Restore `state.pt` of the same run into model/optimiser/schedule; returns its progress dict or None."""
    path = directory / "state.pt"
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["fingerprint"] != fingerprint(config):
        return None  # another run's state: start afresh rather than continue the wrong run
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return state["progress"]


def save_result(out_dir: Path, config: TrainConfig, metrics: dict, history: list[dict]) -> None:
    """Write `result.json` for a finished run and drop its now useless `state.pt`."""
    payload = {"fingerprint": fingerprint(config), "metrics": metrics, "history": history}
    write_json(out_dir / "result.json", payload, indent=None)
    (out_dir / "state.pt").unlink(missing_ok=True)


def load_result(directory: Path, config: TrainConfig) -> dict | None:
    """The saved result of this same run in `directory`, if it finished there."""
    path = directory / "result.json"
    if not path.is_file():
        return None
    payload = json.loads(path.read_text())
    return payload if payload["fingerprint"] == fingerprint(config) else None
