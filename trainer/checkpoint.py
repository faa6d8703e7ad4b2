"""Save and reload models and training state, keeping μP base shapes intact.

- `model.pt`: the final weights + resolved config (what export and transfer read).
- `state.pt`: everything a run needs to continue exactly where it stopped (model, optimiser,
  schedule, progress counters, RNG), written periodically and atomically.
- `result.json`: final metrics and history of a finished run, so a re-run returns it untrained.
All loads use `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from trainer.config import TrainConfig
from trainer.model import Transformer, build_model

# Settings that do not change what a run computes: a run may resume under different ones.
_NOT_IN_FINGERPRINT = {"out_dir", "resume_from", "threads", "device", "checkpoint_every_tokens"}


def fingerprint(config: TrainConfig) -> str:
    """Hash of everything that determines a run's losses."""
    payload = json.dumps(config.model_dump(exclude=_NOT_IN_FINGERPRINT), sort_keys=True)
    return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)  # a reader never sees half a file, even if the writer is killed


def save_checkpoint(out_dir: Path, model: Transformer, config: TrainConfig, tokenizer) -> Path:
    """Write `model.pt` (weights + resolved config) and the tokenizer into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.pt"
    _atomic_save({"model": model.state_dict(), "config": config.model_dump(), "vocab_size": tokenizer.vocab_size}, path)
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
    """Write `state.pt`: enough to continue the run bit for bit."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "fingerprint": fingerprint(config),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "progress": progress,
        "rng": torch.get_rng_state(),
    }
    _atomic_save(state, out_dir / "state.pt")


def load_state(directory: Path, config: TrainConfig, model, optimizer, scheduler) -> dict | None:
    """Restore `state.pt` of the same run into model/optimiser/schedule; returns its progress or None."""
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
    tmp = out_dir / "result.json.tmp"
    tmp.write_text(json.dumps(payload))
    tmp.replace(out_dir / "result.json")
    (out_dir / "state.pt").unlink(missing_ok=True)


def load_result(directory: Path, config: TrainConfig) -> dict | None:
    """The saved result of this same run in `directory`, if it finished there."""
    path = directory / "result.json"
    if not path.is_file():
        return None
    payload = json.loads(path.read_text())
    return payload if payload["fingerprint"] == fingerprint(config) else None
