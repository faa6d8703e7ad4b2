"""Decoder-only pre-LN transformer, parametrised by μP (`mup`), μP + CompleteP (`completep`) or SP (`sp`).

The layout follows GPT-2 (learned positions, LayerNorm, tanh-GELU MLP, untied head) so that an
export can map it onto `transformers.GPT2LMHeadModel` by folding the multipliers into weights.
`build_model` has the μP and CompleteP recipes; under `sp` every multiplier is 1.
"""

from __future__ import annotations

import math

import mup
import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import ModelConfig, OptimConfig

ADAM_EPS = 1e-8  # AdamW's ε at the base shape (torch's default)
LABELS = {"mup": "μP", "completep": "CompleteP", "sp": "SP"}  # how plots and tables name the parametrisations


def depth_mult(cfg: ModelConfig) -> float:
    """m_L = depth/base_depth under completep; 1 under μP and SP, which do not scale with depth."""
    return cfg.depth / cfg.base_depth if cfg.parametrization == "completep" else 1.0


class Attention(nn.Module):
    """Causal multi-head self-attention with a width-aware logit scale."""

    def __init__(self, width: int, n_heads: int, scale: float):
        super().__init__()
        self.n_heads = n_heads
        self.scale = scale
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: ModelConfig, attn_scale: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.width)
        self.attn = Attention(cfg.width, cfg.n_heads, attn_scale)
        self.ln2 = nn.LayerNorm(cfg.width)
        self.fc = nn.Linear(cfg.width, cfg.mlp_ratio * cfg.width, bias=False)
        self.fc_proj = nn.Linear(cfg.mlp_ratio * cfg.width, cfg.width, bias=False)
        # CompleteP: L branches of 1/m_L each keep the residual stream and its updates O(1) in depth
        self.branch_mult = 1.0 / depth_mult(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # add(alpha=1) is exactly x + y: μP and SP compute what they computed before the multiplier
        x = torch.add(x, self.attn(self.ln1(x)), alpha=self.branch_mult)
        return torch.add(x, self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh")), alpha=self.branch_mult)


def attention_scale(cfg: ModelConfig) -> float:
    """Logit scale: 1/sqrt(d_head) under SP; under μP c/d_head with c = sqrt(base d_head).

    The constant makes μP and SP agree exactly at the base width, so the base model is an
    ordinary transformer and only the scaling with width differs.
    """
    d_head = cfg.width // cfg.n_heads
    if cfg.parametrization == "sp":
        return 1.0 / math.sqrt(d_head)
    return math.sqrt(cfg.base_width // cfg.n_heads) / d_head


class Transformer(nn.Module):
    """GPT-style language model; `forward(idx, targets)` returns (logits, mean cross-entropy)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, seq_len: int):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(vocab_size, cfg.width)
        self.wpe = nn.Embedding(seq_len, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg, attention_scale(cfg)) for _ in range(cfg.depth))
        self.ln_f = nn.LayerNorm(cfg.width)
        self.lm_head = mup.MuReadout(cfg.width, vocab_size, bias=False, readout_zero_init=cfg.parametrization != "sp")

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def _reinit(model: Transformer) -> None:
    """Draw weights with mup.init so that hidden matrices shrink with width under μP."""
    cfg = model.cfg
    std = cfg.init_std
    # GPT-2's residual-projection scaling keeps the residual stream's variance independent of depth;
    # under completep the branch multiplier does that, and init stays the base depth's (Table 1).
    proj_std = std / math.sqrt(2 * (cfg.base_depth if cfg.parametrization == "completep" else cfg.depth))
    for name, p in model.named_parameters():
        if name.startswith("lm_head"):
            continue  # MuReadout owns its init (zero under μP and CompleteP)
        if p.dim() == 1:
            continue  # LayerNorm: ones and zeros from torch
        mup.init.normal_(p, std=proj_std if name.endswith("proj.weight") else std)
    if cfg.parametrization != "sp":
        # Zero queries make attention uniform at init at every width (μP paper, appendix D.2).
        for block in model.blocks:
            with torch.no_grad():
                block.attn.qkv.weight[: cfg.width].zero_()


def build_model(cfg: ModelConfig, vocab_size: int, seq_len: int, init: bool = True) -> Transformer:
    """Build a model with base shapes set; `init=False` skips drawing weights (checkpoint reload).

    μP (Yang et al. 2022, mup's README): the output layer is `mup.MuReadout` (zero-initialised,
    logits multiplied by 1/width_mult); `mup.set_base_shapes` runs before any re-initialisation and
    before the optimiser is built; `mup.init.*` shrinks the std of hidden matrices by
    1/sqrt(width_mult); attention logits scale as 1/d_head; `mup.MuAdamW` divides the lr of hidden
    matrices by width_mult (`build_optimizer`).

    CompleteP (depth; Dey et al. 2025, arXiv 2505.01618, Table 1 at α = 1, and its reference code,
    EleutherAI/nanoGPT-mup branch `completep`), on top of μP with m_L = depth/base_depth: each
    residual branch is multiplied by 1/m_L; hidden init has no depth term (GPT-2's 1/sqrt(2·L) is
    taken at base_depth); AdamW's ε for the residual blocks is ε/(m_N·m_L), m_N = width/base_width;
    lr and wd need no depth factor. At the base shape a completep model is the mup model, number
    for number. Under `sp` base shapes are the model's own.
    """
    model = Transformer(cfg, vocab_size, seq_len)
    if cfg.parametrization != "sp":
        # Base and delta differ in every width dimension; built on the meta device (no memory).
        with torch.device("meta"):
            base = Transformer(cfg.model_copy(update={"width": cfg.base_width}), vocab_size, seq_len)
            delta = Transformer(cfg.model_copy(update={"width": 2 * cfg.base_width}), vocab_size, seq_len)
        mup.set_base_shapes(model, base, delta=delta, rescale_params=init)
    else:
        mup.set_base_shapes(model, None, rescale_params=init)
    if init:
        _reinit(model)
    return model


def build_optimizer(model: Transformer, cfg: OptimConfig) -> torch.optim.Optimizer:
    """MuAdamW; norms and biases (1-d parameters) get no weight decay.

    MuAdamW divides a hidden matrix's lr by width_mult m and multiplies its weight decay by m, so
    under PyTorch's AdamW (p -= lr·wd·p) the decay per step lr·wd is the base width's at every
    width: `learning_rate` and `weight_decay` are both stated at `base_width` (and, under completep,
    at `base_depth`: CompleteP's α = 1 leaves lr and wd unchanged in depth and scales only ε).

    Args:
        model: a model from `build_model` (base shapes set).
        cfg: lr, wd and betas at the base shape.

    Returns:
        The optimiser, its groups split by width multiplier (and under completep by residual block).
    """
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if model.cfg.parametrization == "completep":
        groups = [part for group in groups for part in _with_block_eps(model, group)]
    # On CUDA one fused kernel updates every parameter (PyTorch's foreach default launches several per group).
    fused = {"fused": True} if decay and decay[0].is_cuda else {}
    return mup.MuAdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), eps=ADAM_EPS, **fused)


def _with_block_eps(model: Transformer, group: dict) -> list[dict]:
    """`group` split in two: its residual-block parameters get AdamW ε/(m_N·m_L) (CompleteP, Table 1).

    Their gradients shrink as 1/m_N (μP) and 1/m_L (the branch multiplier); a fixed ε would come to
    dominate Adam's denominator in wide or deep models and shrink their updates.
    """
    cfg = model.cfg
    in_blocks = {id(p) for p in model.blocks.parameters()}
    eps = ADAM_EPS / (cfg.width / cfg.base_width * depth_mult(cfg))
    parts = [
        {**group, "params": [p for p in group["params"] if id(p) not in in_blocks]},
        {**group, "params": [p for p in group["params"] if id(p) in in_blocks], "eps": eps},
    ]
    return [part for part in parts if part["params"]]
