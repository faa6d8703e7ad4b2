"""Trainer throughput vs a plain Hugging Face `transformers` loop of the same shape, on CPU.

    flock /tmp/automix-cpu.lock .venv/bin/python benchmarks/throughput.py [--repeats 3] [--threads 1]

Both sides train on the same batches (the trainer's stream over the shared corpora, batch 16 x seq
128) with gradient clipping at 1.0. Ours: `trainer.train.run` end to end (μP model, MuAdamW, WSD
schedule, data, divergence check; one validation window at the end), tokens / wall_time_s. Theirs:
`GPT2LMHeadModel` of the same width, depth, heads and MLP ratio (learned positions, LayerNorm,
tanh-GELU, untied head, SDPA attention, dropout 0; GPT-2 keeps its linear biases, ours has none)
with `torch.optim.AdamW`. Runs alternate ours/theirs within each repeat, so drifting machine load
hits both; the table gives medians and the ratio of medians.

    .venv/bin/python benchmarks/throughput.py --device cuda [--steps 50] [--data ../shared/data]

On a GPU: the ~150M shape (`_gpu.GPT_150M`: w1024, d12, 16 heads, seq 1024, batch 32; bf16
autocast, fused AdamW, SDPA), ours and HF, eager and compiled, tokens/s and model FLOPs
utilisation: 6·N matmul FLOPs per token plus attention's 12·depth·seq·width (PaLM, appendix B),
against the datasheet's dense bf16 peak and against a measured 8192³ bf16 matmul. This mode
imports only trainer/ (benchmarks/_gpu.py), so it runs without Ray, MLflow or optuna.

    .venv/bin/python benchmarks/throughput.py --compile [--threads 1]

CPU: the trainer at the proxy size, eager vs `torch.compile` (TrainConfig.compile), steady-state
tokens/s after the first steps and the time to the first evaluation (compilation included).
"""

from __future__ import annotations

import argparse
import statistics
import time

import _gpu
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from trainer.config import TrainConfig
from trainer.data import Datasets, TrainStream, load_datasets
from trainer.export import gpt2_config
from trainer.model import build_model
from trainer.train import run

# name -> (width, depth, heads, steps per measurement)
SIZES = {"proxy (w64, d2)": (64, 2, 4, 120), "w256, d4": (256, 4, 4, 20)}


def train_config(width: int, depth: int, heads: int, steps: int, threads: int) -> TrainConfig:
    """The example's data and optimiser at this shape, `steps` batches of pure target text, no checkpoints."""
    from _common import study_config  # automix's config loader: the CPU mode only

    overrides = [
        f"model.width={width}",
        f"model.depth={depth}",
        f"model.n_heads={heads}",
        "budget.mode=fixed_tokens",
        "budget.train_tokens=1",  # set below, once the example's batch and seq_len are known
        "budget.mix_ratio=0.0",
        "eval_every_tokens=1000000000000",
    ]
    config = study_config("bench_throughput", overrides, fresh=False).base_train_config()
    batch_tokens = config.optim.batch_size * config.data.seq_len
    return _gpu.with_overrides(
        config,
        {
            "budget.train_tokens": steps * batch_tokens,
            # One validation window (seq_len + 1 tokens, no fewer): the final evaluation costs ~nothing.
            "data.valid_tokens": config.data.seq_len + 1,
            "threads": threads,
            "checkpoint_every_tokens": None,
        },
    )


def ours(config: TrainConfig) -> float:
    """Tokens/s of the trainer's own loop."""
    final = run(config).metrics
    return final["tokens"] / final["wall_time_s"]


def hugging_face(config: TrainConfig, stream: TrainStream, vocab_size: int) -> float:
    """Tokens/s of a textbook transformers loop on the same batches."""
    o = config.optim
    # The same shape as ours, from the exporter's own mapping; sdpa attention as our model uses.
    hf_config = gpt2_config(build_model(config.model, vocab_size, config.data.seq_len), eos_id=vocab_size - 1)
    model = AutoModelForCausalLM.from_config(hf_config, attn_implementation="sdpa")
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=o.learning_rate, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay
    )
    model.train()
    start, tokens = time.perf_counter(), 0
    for step in range(stream.n_batches):
        x, y = stream.batch(step)
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        loss.item()  # the trainer reads every loss (divergence check): same sync here
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        optimizer.step()
        tokens += x.numel()
    return tokens / (time.perf_counter() - start)


def measure(impl: str, config: TrainConfig, data: Datasets) -> float:
    """Tokens/s of one implementation on one size."""
    if impl == "ours":
        return ours(config)
    return hugging_face(config, data.stream, data.tokenizer.vocab_size)


def gpu(args: argparse.Namespace) -> None:
    """Ours vs HF at ~150M parameters on the GPU, eager and compiled, with MFU."""
    base = _gpu.example_config(args.data, args.cache, {"device": "cuda"})
    print(_gpu.machine())
    print(_gpu.compare(base, _gpu.GPT_150M, args.steps, (False, True)))


def compile_cpu(args: argparse.Namespace) -> None:
    """The proxy on CPU, eager vs compiled, alternating, `--repeats` times (repeat 0 warms the caches)."""
    base = _gpu.example_config(args.data, args.cache, {"device": "cpu", "threads": args.threads})
    config = _gpu.shape_config(base, _gpu.PROXY, steps=args.steps + 20, warm_steps=20)
    speeds: dict[str, list[_gpu.Speed]] = {"off": [], "on": []}
    for rep in range(args.repeats + 1):
        for mode in ("off", "on") if rep % 2 else ("on", "off"):
            speed = _gpu.steady_speed(_gpu.with_overrides(config, {"compile": mode}))
            print(f"repeat {rep} compile={mode}: {speed.tokens_per_s:,.0f} tokens/s, warm-up {speed.warmup_s:.1f} s")
            if rep:
                speeds[mode].append(speed)
    rows = [
        [
            mode,
            f"{statistics.median(s.tokens_per_s for s in speeds[mode]):,.0f}",
            f"{statistics.median(s.warmup_s for s in speeds[mode]):.1f}",
        ]
        for mode in ("off", "on")
    ]
    print(_gpu.machine(), f"{args.threads} thread(s)")
    print(
        _gpu.table("proxy on CPU: eager vs torch.compile (median)", ["compile", "tokens/s", "first 20 steps s"], rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a search trial gets 1 per CPU)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--compile", action="store_true", help="CPU: eager vs torch.compile at the proxy size")
    parser.add_argument("--steps", type=int, default=50, help="GPU and --compile: timed steps")
    parser.add_argument("--data", default=str(_gpu.ROOT.parent / "shared" / "data"), help="the corpora's root")
    parser.add_argument("--cache", default="/tmp/automix-bench-cache", help="token cache for --device cuda/--compile")
    args = parser.parse_args()
    if args.device == "cuda":
        return gpu(args)
    if args.compile:
        return compile_cpu(args)
    torch.set_num_threads(args.threads)
    configs = {name: train_config(*shape, args.threads) for name, shape in SIZES.items()}
    data = {name: load_datasets(c) for name, c in configs.items()}
    speeds: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.repeats + 1):  # repeat 0 warms up (first-call kernels, lazy imports); not counted
        for name, config in configs.items():
            for impl in ("hf", "ours") if rep % 2 else ("ours", "hf"):  # alternate who goes first
                speed = measure(impl, config, data[name])
                if rep:
                    speeds.setdefault((name, impl), []).append(speed)
    print(f"{_gpu.machine()}; {args.threads} thread(s), {args.repeats} interleaved repeats, batch 16 x 128")
    rows = []
    for name in configs:
        mine, theirs = (statistics.median(speeds[name, impl]) for impl in ("ours", "hf"))
        ratios = [a / b for a, b in zip(speeds[name, "ours"], speeds[name, "hf"], strict=True)]
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        rows.append((name, f"{mine:,.0f}", f"{theirs:,.0f}", f"{mine / theirs:.2f}x", spread))
    title = "tokens/s, median over repeats (goal: ours >= 1.0x)"
    print(_gpu.table(title, ["size", "automix trainer", "HF GPT2 + AdamW", "ratio", "per-repeat range"], rows))


if __name__ == "__main__":
    main()
