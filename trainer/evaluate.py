"""Evaluation: per-language validation loss (nats per token)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module,
    windows: torch.Tensor,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager],
) -> float:
    """Mean next-token cross-entropy over `windows` ([N, L+1] token ids), token-weighted."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size].to(device)
        with autocast():
            _, loss = model(chunk[:, :-1], chunk[:, 1:])
        n = chunk[:, 1:].numel()
        total += loss.item() * n
        count += n
    return total / count
