"""Trainer benchmarks that import only trainer/ (and transformers): they run where automix's own
dependencies (Ray, MLflow, optuna) are not installed, such as a bare GPU machine.

Used by benchmarks/throughput.py (its --device cuda and --compile modes) and benchmarks/gpu_check.py.
Configs come from examples/ar_en_cpu.yaml, read as plain YAML, with its corpora re-rooted at
`data_root` (the example names ../shared/data).
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml

from trainer.config import TrainConfig
from trainer.data import TrainStream
from trainer.model import build_model
from trainer.train import autocast_for, pick_device, run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ar_en_cpu.yaml"
EXAMPLE_DATA = "../shared/data"  # the prefix of every corpus path in the example
# Dense bf16 peak FLOP/s by device name (NVIDIA data sheets, without sparsity); the first match wins.
PEAK_BF16 = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12), ("L4", 121e12))
# The ~150M shape of the GPU benchmarks: width, depth, heads, seq_len, batch, base_width.
GPT_150M = {"width": 1024, "depth": 12, "heads": 16, "seq": 1024, "batch": 32, "base_width": 256}
PROXY = {"width": 64, "depth": 2, "heads": 4, "seq": 128, "batch": 16, "base_width": 64}  # the example's


def machine() -> str:
    """One line naming what the figures were measured on."""
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}, "
        f"python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}"
    )


def table(title: str, headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table with a title line."""
    lines = [f"\n### {title}\n", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def with_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """`config` with dotted keys (`model.width`) set, validated again."""
    raw = config.model_dump()
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[key] = value
    return TrainConfig.model_validate(raw)


def example_config(
    data_root: str | Path, cache_dir: str | Path, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """The example study's base trial (examples/ar_en_cpu.yaml) on corpora under `data_root`, no checkpoints."""
    raw = yaml.safe_load(EXAMPLE.read_text())
    fields = {k: raw[k] for k in ("data", "model", "optim", "budget", "seed", "eval_every_tokens")}
    data = dict(fields["data"])
    for key in ("target", "target_valid", "auxiliary", "aux_valid"):
        data[key] = str(Path(data_root) / Path(data[key]).relative_to(EXAMPLE_DATA))
    fields["data"] = {**data, "cache_dir": str(cache_dir)}
    config = TrainConfig.model_validate({**fields, "checkpoint_every_tokens": None, "threads": 1})
    return with_overrides(config, overrides or {})


def shape_config(
    base: TrainConfig, shape: dict[str, int], steps: int, warm_steps: int, **overrides: Any
) -> TrainConfig:
    """`base` at `shape`, trained for `steps` batches of pure target text (fixed_tokens mode).

    One evaluation after `warm_steps` and one at the end, each over one validation window
    (`seq_len + 1` tokens: fewer fails the validation set), so that `steady_speed` can time the
    steps between them.
    """
    batch_tokens = shape["batch"] * shape["seq"]
    return with_overrides(
        base,
        {
            "model.width": shape["width"],
            "model.depth": shape["depth"],
            "model.n_heads": shape["heads"],
            "model.base_width": shape["base_width"],
            "data.seq_len": shape["seq"],
            "data.valid_tokens": shape["seq"] + 1,
            "optim.batch_size": shape["batch"],
            "budget.mode": "fixed_tokens",
            "budget.train_tokens": steps * batch_tokens,
            "budget.mix_ratio": 0.0,
            "budget.unique_tokens": max(base.budget.unique_tokens, shape["seq"] + 1),
            "eval_every_tokens": warm_steps * batch_tokens,
            **overrides,
        },
    )


@dataclass
class Speed:
    """Steady-state tokens/s after the first evaluation, and the wall time up to it (start-up, compile)."""

    tokens_per_s: float
    warmup_s: float
    final: dict[str, float]
    notes: list[str] = field(default_factory=list)  # the trainer's warnings, e.g. compile falling back


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def trainer_warnings() -> Iterator[list[str]]:
    """The messages trainer/train.py logs as warnings meanwhile: a benchmark row must say it ran eagerly."""
    handler, logger = _Collect(), logging.getLogger("trainer.train")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def steady_speed(config: TrainConfig) -> Speed:
    """Train `config` with `trainer.train.run` and time the steps between its first and last evaluation."""
    with trainer_warnings() as notes:
        history = run(config).history
    first, last = history[0], history[-1]
    if len(history) < 2:
        return Speed(last["tokens"] / last["compute_time_s"], 0.0, last, notes)
    speed = (last["tokens"] - first["tokens"]) / (last["compute_time_s"] - first["compute_time_s"])
    return Speed(speed, first["wall_time_s"], last, notes)


def flops_per_token(config: TrainConfig, vocab_size: int) -> float:
    """Training FLOPs per token: 6 per matmul weight (embedding lookups are not matmuls) plus attention's
    12·depth·seq·width (PaLM's accounting: QKᵀ and AV, forward and backward)."""
    m = config.model
    with torch.device("meta"):
        model = build_model(m, vocab_size, config.data.seq_len, init=False)
    matmul = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and not name.startswith("wpe"))
    matmul -= model.wte.weight.numel()
    return 6 * matmul + 12 * m.depth * config.data.seq_len * m.width


def datasheet_peak() -> float | None:
    """The CUDA device's dense bf16 peak from `PEAK_BF16`, None on CPU or an unknown GPU."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((p for k, p in PEAK_BF16 if k in name), None)


def matmul_peak(device: torch.device, n: int = 8192, repeats: int = 20) -> float:
    """Measured FLOP/s of an n³ matmul: bf16 on CUDA (what MFU is against in practice), fp32 on CPU."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):  # first calls pick kernels
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def hf_speed(config: TrainConfig, stream: TrainStream, vocab_size: int, compile: bool, warm_steps: int) -> Speed:
    """Tokens/s of a textbook `transformers` GPT-2 loop of the same shape on the same batches.

    GPT-2 from the exporter's own mapping (trainer/export.py), SDPA attention, torch AdamW (fused on
    CUDA), bf16 autocast on CUDA, clipping at `grad_clip`; losses read every 32 steps on CUDA, every
    step on CPU, as the trainer does. Steps after `warm_steps` are timed.
    """
    from transformers import AutoModelForCausalLM

    from trainer.export import gpt2_config

    device, o = pick_device(config.device), config.optim
    hf_config = gpt2_config(build_model(config.model, vocab_size, config.data.seq_len, init=False), vocab_size - 1)
    model = AutoModelForCausalLM.from_config(hf_config, attn_implementation="sdpa").to(device)
    fused = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=o.learning_rate, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay, **fused
    )
    forward = torch.compile(model) if compile else model
    autocast = autocast_for(device, config.precision)
    read_every = 32 if device.type == "cuda" else 1
    if not 0 < warm_steps < stream.n_batches:
        raise ValueError(f"warm_steps {warm_steps} must be within the run's {stream.n_batches} steps")
    model.train()
    start, pending, losses = time.perf_counter(), [], []
    for step in range(stream.n_batches):
        if step == warm_steps:
            sync(device)  # the device catches up before the timed steps
            warm, start = time.perf_counter() - start, time.perf_counter()
        x, y = (t.to(device, non_blocking=True) for t in stream.batch(step))
        with autocast():
            logits = forward(input_ids=x).logits
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        pending.append(loss.detach())
        if len(pending) >= read_every:
            losses += torch.stack(pending).tolist()
            pending = []
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        optimizer.step()
    losses += torch.stack(pending).tolist() if pending else []
    timed = (stream.n_batches - warm_steps) * stream.batch_size * stream.seq_len
    return Speed(timed / (time.perf_counter() - start), warm, {"train_loss": losses[-1]})


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare(base: TrainConfig, shape: dict[str, int], timed_steps: int, compiles: tuple[bool, ...]) -> str:
    """Ours (`trainer.train.run`) vs HF GPT-2 at `shape`, eager and/or compiled: tokens/s and MFU, a Markdown table.

    Each trains 2 × `timed_steps` batches and is timed over the second half (the first holds
    compilation and warm-up; ours evaluates only at the half and at the end). MFU is against the
    datasheet's dense bf16 peak and against a measured 8192³ matmul side by side (on CPU: an fp32
    1024³ matmul, no datasheet).
    """
    from trainer.data import load_datasets

    warm_steps = timed_steps
    config = shape_config(base, shape, 2 * timed_steps, warm_steps)
    data = load_datasets(config)
    vocab = data.tokenizer.vocab_size
    device = pick_device(config.device)
    cuda = device.type == "cuda"
    flops = flops_per_token(config, vocab)
    sheet = datasheet_peak()
    measured = matmul_peak(device, 8192 if cuda else 1024)
    rows = []
    for compiled in compiles:
        for impl in ("ours", "HF GPT2"):
            mode = "compiled" if compiled else "eager"
            try:
                if impl == "ours":
                    speed = steady_speed(with_overrides(config, {"compile": "on" if compiled else "off"}))
                else:
                    speed = hf_speed(config, data.stream, vocab, compiled, warm_steps)
            except Exception as e:  # one implementation failing (an HF compile error) keeps the other's row
                rows.append([impl, mode, "-", "-", "-", "-", f"FAILED {type(e).__name__}: {str(e)[:200]}"])
                continue
            mfu = [f"{100 * speed.tokens_per_s * flops / p:.1f}%" if p else "-" for p in (sheet, measured)]
            notes = "; ".join(speed.notes)
            rows.append([impl, mode, f"{speed.tokens_per_s:,.0f}", *mfu, f"{speed.warmup_s:.1f}", notes])
    m = config.model
    sheet_text = f"datasheet {sheet / 1e12:.0f}, " if sheet else ""
    title = (
        f"ours vs HF at w{m.width} d{m.depth} seq {config.data.seq_len} batch {config.optim.batch_size} "
        f"({flops / 1e9:.3g} GFLOP/token) on {device.type}{' (bf16 autocast, fused AdamW, SDPA)' * cuda}; "
        f"peak TFLOP/s: {sheet_text}measured matmul {measured / 1e12:.3g}"
    )
    headers = ["impl", "mode", "tokens/s", "MFU (datasheet)", "MFU (measured matmul)", "warm-up s", "notes"]
    return table(title, headers, rows)
