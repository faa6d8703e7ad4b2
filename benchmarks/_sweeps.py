"""Helpers shared by the transfer sweeps (depth_transfer.py, budget_transfer.py): timing a shape for `--estimate`."""

from __future__ import annotations

import time

import torch

from trainer.config import TrainConfig
from trainer.model import build_model, build_optimizer

_VOCAB = 257  # byte-level: what the benchmark corpora are tokenised to


def step_seconds(config: TrainConfig, steps: int = 4) -> float:
    """Seconds per training step (forward, backward, AdamW) of `config`'s model and batch, after one untimed step.

    Args:
        config: the run; its model, batch size and sequence length are timed on random bytes, in
            the calling thread's torch settings (set one thread to time one worker of a sweep).
        steps: timed steps.

    Returns:
        The mean seconds per step.
    """
    model = build_model(config.model, _VOCAB, config.data.seq_len)
    opt = build_optimizer(model, config.optim)
    x = torch.randint(0, _VOCAB, (config.optim.batch_size, config.data.seq_len + 1))
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        _, loss = model(x[:, :-1], x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps
