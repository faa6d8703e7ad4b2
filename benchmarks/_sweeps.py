"""Helpers shared by the transfer sweeps (transfer.py, depth_transfer.py, budget_transfer.py): the short run
they train, the command line (`--tiny`, `--estimate`) and timing a shape for `--estimate`."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import torch
from _common import machine

from trainer.config import TrainConfig
from trainer.model import build_model, build_optimizer

_VOCAB = 257  # byte-level: what the benchmark corpora are tokenised to
# The short run of the width and depth sweeps: 32k unique tokens, 10 epochs, one evaluation.
SHORT_RUN = (
    "data.valid_tokens=16384",
    "budget.unique_tokens=32768",
    "budget.epochs=10",
    "budget.mix_ratio=0.0",
    "optim.weight_decay=0.1",
    "optim.warmup_tokens=32768",
    "eval_every_tokens=1000000000",  # one evaluation, at the end
    "search.concurrency=2",
    "search.cpus_per_trial=1",
)
P = TypeVar("P")


def sweep_main(doc: str, tiny: P, full: P, estimate: Callable[[P], None], run: Callable[[P], None]) -> None:
    """A sweep's command line: `--tiny` runs `tiny` (does the script work), `--estimate` times `full`'s shapes.

    Args:
        doc: the script's docstring (its first line describes the command).
        tiny, full: the script's two plans.
        estimate: prints the CPU time a plan needs, training nothing.
        run: trains (resuming) and reports a plan.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few steps at tiny sizes: does the script work")
    parser.add_argument("--estimate", action="store_true", help="time a few steps per shape; train nothing")
    args = parser.parse_args()
    plan = tiny if args.tiny else full
    print(machine())
    if args.estimate:
        estimate(plan)
        return
    start = time.time()
    run(plan)
    print(f"\n{time.time() - start:.0f} s wall")


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
