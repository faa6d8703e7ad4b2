"""How many trials share one GPU: `gpus_per_trial = 1/k`, from a trial's size and the GPU it runs on.

Small μP proxies leave a GPU mostly idle: a trial is bound by Python and kernel launches, and K
processes on one GPU add up (BENCHMARKS.md "GPU packing"). `pack` takes the smallest of four
limits: memory, compute, CPU cores and `MAX_PER_GPU`. Pure functions of their arguments, except
`visible_gpu_free_bytes` and `resolve_gpus_per_trial`, which look at the machine when not told.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from trainer.config import TrainConfig

MAX_PER_GPU = 16  # past it the proxy's summed throughput barely grew, and each process holds a CUDA context
CUDA_CONTEXT_BYTES = 500 * 2**20  # per process: CUDA context, cuBLAS workspace, kernels loaded
BYTES_PER_PARAM = 18  # fp32 weight, gradient and two AdamW moments (16), bf16 autocast copy (2)
# Saved for backward per token per layer, in bytes: fp32 LayerNorm inputs (2 x 4w), bf16 matmul
# inputs (qkv, proj, fc, fc_proj: 2w + 2w + 2w + 8w), q/k/v for SDPA (6w), the MLP's GELU input
# and output (8w + 8w): 36w. SDPA keeps no seq x seq attention matrix.
ACTIVATION_BYTES_PER_WIDTH = 36
LOGIT_BYTES = 14  # per token per vocabulary entry: bf16 logits, their fp32 copy, softmax and gradient
HEADROOM = 0.9  # of the free memory: the caching allocator fragments, and backward needs scratch
# Compute: a step takes HOST_S_BASE + HOST_S_PER_LAYER·depth of host time (Python, kernel
# launches) and its FLOPs at PACKED_FLOPS; packed processes never interleave perfectly, so
# OVERSUBSCRIBE times the count that would just fill the GPU. All three are fitted to one H200's
# measurements (BENCHMARKS.md "GPU packing").
HOST_S_BASE, HOST_S_PER_LAYER = 2e-3, 1.5e-3
PACKED_FLOPS = 2e14
OVERSUBSCRIBE = 1.5


@dataclass(frozen=True)
class TrialSize:
    """What sizes one trial: parameters and the shape of one training step."""

    params: int
    batch_size: int
    seq_len: int
    width: int
    depth: int
    vocab_size: int
    flops_per_token: float


def trial_size(config: TrainConfig) -> TrialSize:
    """The size of a trial of `config` (trainer/model.py's layout: no linear biases, untied head)."""
    m, d = config.model, config.data
    vocab = 257 if d.tokenizer == "byte" else d.vocab_size  # trainer/tokenizer.py: 256 bytes + eos
    w, hidden = m.width, m.mlp_ratio * m.width
    per_layer = 4 * w * w + 2 * w * hidden  # qkv, proj, fc, fc_proj
    params = vocab * w + d.seq_len * w + m.depth * (per_layer + 4 * w) + 2 * w + w * vocab
    # 6 FLOPs per matmul weight and token, plus attention's 12·depth·seq·width (benchmarks/_gpu.py).
    flops = 6 * (m.depth * per_layer + w * vocab) + 12 * m.depth * d.seq_len * w
    return TrialSize(params, config.optim.batch_size, d.seq_len, w, m.depth, vocab, flops)


def trial_bytes(size: TrialSize) -> int:
    """Peak GPU memory of one trial: weights and AdamW state, bf16 activations, logits, CUDA context."""
    tokens = size.batch_size * size.seq_len
    activations = ACTIVATION_BYTES_PER_WIDTH * tokens * size.width * size.depth
    logits = LOGIT_BYTES * tokens * size.vocab_size
    return BYTES_PER_PARAM * size.params + activations + logits + CUDA_CONTEXT_BYTES


def compute_limit(size: TrialSize) -> int:
    """How many trials it takes to keep the GPU busy: OVERSUBSCRIBE / (one trial's share of GPU time)."""
    gpu_s = size.flops_per_token * size.batch_size * size.seq_len / PACKED_FLOPS
    host_s = HOST_S_BASE + HOST_S_PER_LAYER * size.depth
    return max(1, math.ceil(OVERSUBSCRIBE * (gpu_s + host_s) / gpu_s))


@dataclass(frozen=True)
class Packing:
    """k trials per GPU, `gpus_per_trial` = 1/k for Ray, and which limit set k."""

    k: int
    gpus_per_trial: float
    limited_by: str  # "memory", "compute", "cpu cores" or "cap"
    limits: dict[str, int]


def pack(size: TrialSize, free_bytes: int, cpu_cores: int, cpus_per_trial: float = 1.0) -> Packing:
    """How many trials of `size` share a GPU with `free_bytes` free, on a machine with `cpu_cores`.

    k is the smallest of: memory (the free memory over one trial's peak, `trial_bytes`); compute
    (enough trials to fill the GPU while each waits on its own host side, `compute_limit`: a ~150M
    model at batch 32 x 1024 fills it alone); CPU cores (each trial runs its own process and data
    thread); and `MAX_PER_GPU`.
    """
    limits = {
        "memory": int(HEADROOM * free_bytes // trial_bytes(size)),
        "compute": compute_limit(size),
        "cpu cores": int(cpu_cores // max(cpus_per_trial, 1.0)),
        "cap": MAX_PER_GPU,
    }
    limited_by = min(limits, key=limits.get)
    k = max(1, limits[limited_by])  # one trial runs even where the estimate says it will not fit
    return Packing(k, gpu_fraction(k), limited_by, limits)


def gpu_fraction(k: int) -> float:
    """1/k rounded down to Ray's resource precision (1e-4), so that k of them still fit in one GPU."""
    return math.floor(1e4 / k) / 1e4


def visible_gpu_free_bytes() -> int | None:
    """Free memory of the emptiest visible GPU (the least free); None when no GPU is visible.

    nvidia-smi first: it reads the driver without creating a CUDA context in this (the search
    driver's) process, which would hold ~500 MB of the GPU for the whole search. Numeric
    CUDA_VISIBLE_DEVICES select its rows; otherwise torch.cuda.mem_get_info answers.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return None
    smi = shutil.which("nvidia-smi")
    if smi and (visible is None or all(v.strip().isdigit() for v in visible.split(","))):
        try:
            out = subprocess.run(
                [smi, "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
            free = {int(i): int(mib) * 2**20 for i, mib in (line.split(",") for line in out.strip().splitlines())}
            chosen = [int(v) for v in visible.split(",")] if visible else list(free)
            return min(free[i] for i in chosen if i in free) if free else None
        except (OSError, subprocess.SubprocessError, ValueError):
            pass  # fall through to torch
    import torch

    if not torch.cuda.is_available():
        return None
    return min(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))


def resolve_gpus_per_trial(
    value: float | str,
    config: TrainConfig | None,
    cpus_per_trial: float = 1.0,
    free_bytes: int | None | Literal["look"] = "look",
    cpu_cores: int | None = None,
    cluster_gpus: float = 0.0,
) -> tuple[float, int]:
    """A search's `gpus_per_trial` as Ray takes it, and k trials per GPU.

    A number is kept (k = trials it lets share a GPU, 0 for 0). "auto" packs trials of `config`
    (the search's largest trial) with `pack` on `free_bytes`, the free memory of the emptiest
    visible GPU (None: no GPU visible; "look": `visible_gpu_free_bytes`). It gives a whole GPU per
    trial where there is no config to size (a custom objective), or where this machine sees no GPU
    but the Ray cluster it joined has `cluster_gpus` (their memory cannot be read from here); and
    (0.0, 0) where there is no GPU or `config.device` is cpu.
    """
    if value != "auto":
        fraction = float(value)
        return fraction, (math.floor(1 / fraction + 1e-9) if fraction > 0 else 0)
    if config is not None and config.device == "cpu":
        return 0.0, 0
    if free_bytes == "look":
        free_bytes = visible_gpu_free_bytes()
    if free_bytes is None:
        return (1.0, 1) if cluster_gpus > 0 else (0.0, 0)
    if config is None:
        return 1.0, 1
    packing = pack(trial_size(config), free_bytes, cpu_cores or os.cpu_count() or 1, cpus_per_trial)
    return packing.gpus_per_trial, packing.k


def gpu_share_line(share: float, per_gpu: int, cluster_gpus: float = 0.0) -> str:
    """What the console says of `resolve_gpus_per_trial`'s answer (after "GPUs: ")."""
    if share <= 0:
        return "none visible, trials run on the CPU"
    if cluster_gpus > 0:
        return (
            f"none on this machine, {cluster_gpus:g} in the Ray cluster: one trial per GPU (their memory is "
            "not visible from here; gpus_per_trial: 0.25 packs 4 a GPU)"
        )
    return f"{per_gpu} trial(s) share each GPU (gpus_per_trial={share:.3g})"
