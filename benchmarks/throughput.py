"""Trainer throughput vs a plain Hugging Face `transformers` loop of the same shape, on CPU.

    flock /tmp/automix-cpu.lock .venv/bin/python benchmarks/throughput.py [--repeats 3] [--threads 1]

Both sides train on the same batches (the trainer's stream over the shared corpora, batch 16 x seq
128) with gradient clipping at 1.0. Ours: `trainer.train.run` end to end (μP model, MuAdamW, WSD
schedule, data, divergence check; one validation window at the end), tokens / wall_time_s. Theirs:
`GPT2LMHeadModel` of the same width, depth, heads and MLP ratio (learned positions, LayerNorm,
tanh-GELU, untied head, SDPA attention, dropout 0; GPT-2 keeps its linear biases, ours has none)
with `torch.optim.AdamW`. Runs alternate ours/theirs within each repeat, so drifting machine load
hits both; the table gives medians and the ratio of medians.

    .venv/bin/python benchmarks/throughput.py --device cuda [--peak-tflops 989]

On a GPU: the trainer alone at ~150M parameters (w1024, d12, 16 heads, seq 1024, batch 32; bf16
autocast, fused AdamW, SDPA), tokens/s and model FLOPs utilisation: 6·N matmul FLOPs per token plus
attention's 12·depth·seq·width (PaLM, appendix B) over the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from _common import Clock, machine, print_table, study_config
from transformers import AutoModelForCausalLM

from trainer.config import TrainConfig
from trainer.data import Datasets, TrainStream, load_datasets
from trainer.export import gpt2_config
from trainer.model import build_model
from trainer.train import run

# name -> (width, depth, heads, steps per measurement)
SIZES = {"proxy (w64, d2)": (64, 2, 4, 120), "w256, d4": (256, 4, 4, 20)}
# Dense bf16 peak FLOP/s by device name (NVIDIA data sheets); the first match wins.
PEAK_BF16 = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12), ("L4", 121e12))


def train_config(
    width: int, depth: int, heads: int, steps: int, threads: int, extra: tuple[str, ...] = (), batch: int = 16 * 128
) -> TrainConfig:
    """The example's data and optimiser at this shape, `steps` batches of pure target text, no checkpoints."""
    overrides = [
        f"model.width={width}",
        f"model.depth={depth}",
        f"model.n_heads={heads}",
        "budget.mode=fixed_tokens",
        f"budget.train_tokens={steps * batch}",
        "budget.mix_ratio=0.0",
        "data.valid_tokens=129",  # one validation window: the final evaluation costs ~nothing
        "eval_every_tokens=1000000000000",
        *extra,
    ]
    config = study_config("bench_throughput", overrides, fresh=False).base_train_config()
    return config.model_copy(update={"threads": threads, "checkpoint_every_tokens": None})


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
    clock, tokens = Clock(), 0
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
    return tokens / clock.elapsed()


def measure(impl: str, config: TrainConfig, data: Datasets) -> float:
    """Tokens/s of one implementation on one size."""
    if impl == "ours":
        return ours(config)
    return hugging_face(config, data.stream, data.tokenizer.vocab_size)


def flops_per_token(config: TrainConfig, vocab_size: int) -> float:
    """Training FLOPs per token: 6 per matmul weight (embedding lookups are not matmuls) plus attention."""
    model = build_model(config.model, vocab_size, config.data.seq_len, init=False)
    matmul = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and not name.startswith("wpe"))
    matmul -= model.wte.weight.numel()
    m = config.model
    return 6 * matmul + 12 * m.depth * config.data.seq_len * m.width


def gpu(args: argparse.Namespace) -> None:
    """Tokens/s and MFU of the trainer at ~150M parameters on the GPU."""
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops * 1e12 if args.peak_tflops else next((p for k, p in PEAK_BF16 if k in name), None)
    seq, batch = 1024, 32
    extra = ("model.base_width=256", f"data.seq_len={seq}", f"optim.batch_size={batch}", "device=cuda")
    config = train_config(1024, 12, 16, args.steps, 1, extra, batch=batch * seq)
    vocab = load_datasets(config).tokenizer.vocab_size
    run(config.model_copy(update={"budget": config.budget.model_copy(update={"train_tokens": 5 * batch * seq})}))
    speed = ours(config)  # after a warm-up run: kernels chosen, allocator warm
    flops = flops_per_token(config, vocab)
    mfu = f"{100 * speed * flops / peak:.1f}%" if peak else "- (give --peak-tflops)"
    print(f"{machine()}; {name}; {args.steps} steps of {batch} x {seq} tokens, bf16 autocast, fused AdamW, SDPA")
    print_table(
        "trainer on the GPU",
        ["size", "tokens/s", "GFLOP/token", "MFU"],
        [("~150M (w1024, d12, seq 1024)", f"{speed:,.0f}", f"{flops / 1e9:.2f}", mfu)],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a search trial gets 1 per CPU)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=50, help="GPU: measured steps")
    parser.add_argument("--peak-tflops", type=float, default=None, help="GPU: dense bf16 peak, if not in the table")
    args = parser.parse_args()
    if args.device == "cuda":
        return gpu(args)
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
    print(f"{machine()}; {args.threads} thread(s), {args.repeats} interleaved repeats, batch 16 x 128")
    rows = []
    for name in configs:
        mine, theirs = (statistics.median(speeds[name, impl]) for impl in ("ours", "hf"))
        ratios = [a / b for a, b in zip(speeds[name, "ours"], speeds[name, "hf"], strict=True)]
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        rows.append((name, f"{mine:,.0f}", f"{theirs:,.0f}", f"{mine / theirs:.2f}x", spread))
    print_table(
        "tokens/s, median over repeats (goal: ours >= 1.0x)",
        ["size", "automix trainer", "HF GPT2 + AdamW", "ratio", "per-repeat range"],
        rows,
    )


if __name__ == "__main__":
    main()
