"""Corpora → token ids → the mixed, repeated training stream; validation sets.

`TrainStream` holds the U/E/r plan of one run (the counts are `trainer/budget.py`'s `TokenPlan`);
`batch(step)` is a pure function of the step, so a run can resume anywhere. The corpora come from
the token cache (`trainer/token_cache.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from trainer.budget import TokenPlan
from trainer.config import DataConfig, TrainConfig
from trainer.errors import CorpusError
from trainer.token_cache import TokenArray, load_tokens
from trainer.tokenizer import Tokenizer, build_tokenizer

__all__ = [
    "CorpusError",
    "DataSummary",
    "Datasets",
    "TrainStream",
    "build_stream",
    "load_datasets",
    "load_validation",
    "prepare",
]

# Tags that keep the seeded random streams of different purposes independent.
_AUX_POSITIONS, _EPOCH_ORDER = 1, 2


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([k % 2**64 for k in keys])


@lru_cache(maxsize=8)
def _epoch_order(seed: int, epoch: int, n_chunks: int) -> np.ndarray:
    """The chunk order of one epoch; cached because consecutive batches share an epoch."""
    order = _rng(_EPOCH_ORDER, seed, epoch).permutation(n_chunks)
    order.flags.writeable = False
    return order


class TrainStream:
    """The training sequences of one run: which come from which corpus, and in what order.

    With U = budget.unique_tokens, L = data.seq_len, E = epochs and r = mix_ratio:
    - the target pool is the first U+1 tokens of the target corpus in the document order seeded by
      `data.data_seed`, cut into n_chunks = U // L chunks, chunk i = pool[i*L : i*L + L + 1];
    - n_target target and n_aux auxiliary sequences, as `TokenPlan` counts them; exactly n_aux of
      the n_total positions, picked by a permutation seeded by `seed`, are auxiliary;
    - target sequences walk the chunks in a fresh order each epoch (seeded by `seed` and the epoch;
      the last epoch may be partial); auxiliary sequences are consecutive L+1 windows of the
      auxiliary corpus in its own seeded document order, never repeated.
    """

    def __init__(self, target: TokenArray, auxiliary: TokenArray | None, cfg: TrainConfig):
        budget, L = cfg.budget, cfg.data.seq_len
        U, r = budget.unique_tokens, budget.mix_ratio
        if r > 0 and auxiliary is None:
            raise CorpusError(f"budget.mix_ratio is {r} but data.auxiliary is not set: set it or use mix_ratio 0")
        if target.n_tokens < U + 1:
            raise CorpusError(
                f"target corpus {target.source} has {target.n_tokens:,} tokens, fewer than "
                f"budget.unique_tokens + 1 = {U + 1:,}: lower unique_tokens or add target text"
            )
        if U // L == 0:
            raise CorpusError(f"budget.unique_tokens {U} is smaller than data.seq_len {L}: raise it")
        fixed = budget.mode == "fixed_tokens"
        self.plan = TokenPlan.of(U, L, r, epochs=budget.epochs, tokens=budget.total_tokens if fixed else None)
        self.n_chunks, self.n_target, self.n_aux = self.plan.n_chunks, self.plan.n_target, self.plan.n_aux
        n_total = self.plan.n_sequences
        if n_total == 0:
            raise CorpusError(f"the budget gives no sequence of {L} tokens (T = {budget.total_tokens}): raise it")
        needed = self.n_aux * L + 1
        if self.n_aux and auxiliary.n_tokens < needed:
            raise CorpusError(
                f"auxiliary corpus {auxiliary.source} has {auxiliary.n_tokens:,} tokens but mix_ratio r={r} "
                f"of train_tokens T={budget.total_tokens:,} needs {needed:,} ({self.n_aux:,} sequences of "
                f"{L}+1) without repeating: lower r or T, or add auxiliary text"
            )
        self.seq_len, self.batch_size, self.seed = L, cfg.optim.batch_size, cfg.seed
        self.target_tokens = target.n_tokens
        self.aux_tokens = None if auxiliary is None else auxiliary.n_tokens
        self.n_sequences = n_total
        self.n_batches = math.ceil(n_total / self.batch_size)
        self._pool = target.ids[: U + 1]  # the only target tokens training may touch
        self._aux = None if auxiliary is None else auxiliary.ids[:needed]
        self.is_aux = np.zeros(n_total, dtype=bool)
        self.is_aux[_rng(_AUX_POSITIONS, cfg.seed).permutation(n_total)[: self.n_aux]] = True
        self.is_aux.flags.writeable = False
        # Target sequences before each batch: lets batch(step) number its sequences without a scan.
        per_batch = np.add.reduceat((~self.is_aux).astype(np.int64), np.arange(0, n_total, self.batch_size))
        self._target_before = np.concatenate([[0], np.cumsum(per_batch)])

    @property
    def n_tokens(self) -> int:
        """T as trained: input tokens over all sequences."""
        return self.plan.tokens

    @property
    def epochs(self) -> float:
        """E as trained: target sequences per chunk."""
        return self.plan.epochs

    @property
    def source_index(self) -> np.ndarray:
        """Per sequence: its target chunk, or (where `is_aux`) its auxiliary window."""
        return self._sources(0, self.n_sequences)

    def tokens_per_batch(self, step: int) -> int:
        """Input tokens in batch `step` (only the last batch can be short)."""
        return (min((step + 1) * self.batch_size, self.n_sequences) - step * self.batch_size) * self.seq_len

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token labels of batch `step`, LongTensors of shape [B, L]."""
        if not 0 <= step < self.n_batches:
            raise IndexError(f"step {step} is outside 0..{self.n_batches - 1}")
        lo = step * self.batch_size
        hi = min(lo + self.batch_size, self.n_sequences)
        aux = self.is_aux[lo:hi]
        window = self._sources(lo, hi)[:, None] * self.seq_len + np.arange(self.seq_len + 1)
        rows = np.empty(window.shape, dtype=np.int64)
        rows[~aux] = self._pool[window[~aux]]
        if aux.any():
            rows[aux] = self._aux[window[aux]]
        rows = torch.from_numpy(rows)
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()

    def _sources(self, lo: int, hi: int) -> np.ndarray:
        """Source indices of sequences lo..hi-1; `lo` must start a batch."""
        aux = self.is_aux[lo:hi]
        t_before = int(self._target_before[lo // self.batch_size])
        t_ord = t_before + np.cumsum(~aux) - 1  # k-th target sequence of the stream
        index = (lo - t_before) + np.cumsum(aux) - 1  # j-th auxiliary window
        t_ord = t_ord[~aux]
        epoch, within = np.divmod(t_ord, self.n_chunks)
        chunks = np.empty_like(t_ord)
        for e in np.unique(epoch):
            sel = epoch == e
            chunks[sel] = _epoch_order(self.seed, int(e), self.n_chunks)[within[sel]]
        index[~aux] = chunks
        return index


def load_validation(source: str, tokenizer: Tokenizer, cfg: DataConfig) -> torch.Tensor:
    """Windows [N, L+1] over the first `cfg.valid_tokens` tokens of `source` in file order (step L)."""
    ids = load_tokens(source, tokenizer, cfg, order_seed=None).ids[: cfg.valid_tokens]
    L = cfg.seq_len
    n = (len(ids) - 1) // L
    if n < 1:
        raise CorpusError(
            f"validation set {source} gives {len(ids)} tokens (data.valid_tokens {cfg.valid_tokens}), "
            f"fewer than data.seq_len + 1 = {L + 1}: add text or raise valid_tokens"
        )
    return torch.from_numpy(ids[np.arange(n)[:, None] * L + np.arange(L + 1)].astype(np.int64))


def build_stream(cfg: TrainConfig, tokenizer: Tokenizer | None = None) -> TrainStream:
    """The training stream of `cfg`, from cached token arrays (tokenizing on a cache miss)."""
    data = cfg.data
    tokenizer = tokenizer or build_tokenizer(data)
    target = load_tokens(data.target, tokenizer, data, order_seed=data.data_seed)
    aux = load_tokens(data.auxiliary, tokenizer, data, order_seed=data.data_seed) if data.auxiliary else None
    return TrainStream(target, aux, cfg)


@dataclass(frozen=True)
class Datasets:
    """Everything a run reads: the tokenizer, the training stream and the validation windows."""

    tokenizer: Tokenizer
    stream: TrainStream
    target_valid: torch.Tensor
    aux_valid: torch.Tensor | None


def load_datasets(cfg: TrainConfig) -> Datasets:
    """Tokenizer, stream and validation sets of one run."""
    tokenizer = build_tokenizer(cfg.data)
    aux_valid = cfg.data.aux_valid
    return Datasets(
        tokenizer=tokenizer,
        stream=build_stream(cfg, tokenizer),
        target_valid=load_validation(cfg.data.target_valid, tokenizer, cfg.data),
        aux_valid=load_validation(aux_valid, tokenizer, cfg.data) if aux_valid else None,
    )


@dataclass(frozen=True)
class DataSummary:
    """What `prepare` found: corpus sizes in tokens and the stream the budget gives."""

    tokenizer: str
    vocab_size: int
    target_tokens: int
    aux_tokens: int | None
    target_valid_windows: int
    aux_valid_windows: int | None
    n_chunks: int
    n_target: int
    n_aux: int
    train_tokens: int
    epochs: float


def prepare(cfg: TrainConfig) -> DataSummary:
    """Build the tokenizer, tokenize and cache every corpus and check the budget, once before a search.

    Raises CorpusError before any trial starts; afterwards every trial's loads are cache hits.
    """
    data = load_datasets(cfg)
    stream = data.stream
    return DataSummary(
        tokenizer=data.tokenizer.fingerprint,
        vocab_size=data.tokenizer.vocab_size,
        target_tokens=stream.target_tokens,
        aux_tokens=stream.aux_tokens,
        target_valid_windows=len(data.target_valid),
        aux_valid_windows=None if data.aux_valid is None else len(data.aux_valid),
        n_chunks=stream.n_chunks,
        n_target=stream.n_target,
        n_aux=stream.n_aux,
        train_tokens=stream.n_tokens,
        epochs=stream.epochs,
    )
