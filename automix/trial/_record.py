"""What a trial is, beyond its searched params: the effective trainer config, its data and its size.

`describe(config)` gives a `TrialRecord` of plain values (no MLflow here: the driver's tracking
layer writes it as a run's params, metrics and dataset inputs), so a trial's MLflow run alone says
what trained it: every setting, each corpus with the content hash the token cache keys it by, the
budget as trained and the model's size and cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from trainer.config import DataConfig, TrainConfig
from trainer.data import TrainStream
from trainer.documents import content_key
from trainer.model import Transformer
from trainer.token_cache import TokenArray, load_tokens
from trainer.tokenizer import BPE_FILE, BYTE_FILE, build_tokenizer

MODEL_FILE = "model.pt"


@dataclass(frozen=True)
class DatasetRecord:
    """One corpus a trial reads: where it is, what it holds (content hash, size), and how much is used."""

    role: str  # target, auxiliary, target_valid or aux_valid
    source: str  # a file or folder path, or hf:NAME[:CONFIG]
    digest: str  # trainer.documents.content_key: the hash of its bytes that keys the token cache
    tokens: int  # the whole corpus, tokenized, an eos after each document
    documents: int
    used_tokens: int  # what the trial reads of it: U for the target, r·T for the auxiliary, the validation cap


@dataclass(frozen=True)
class TrialRecord:
    """The effective config of a trial, its derived sizes and its data."""

    config: dict  # TrainConfig.model_dump() of the trial
    derived: dict[str, float]  # budget/* as trained, model/* (`model_sizes`), budget/flops
    datasets: list[DatasetRecord]
    tokenizer: str  # the tokenizer's fingerprint (part of every token cache key)
    checkpoint_files: list[str] = field(default_factory=list)  # model and tokenizer files, once trained


def describe(config: TrainConfig) -> TrialRecord:
    """The record of a trial that trains `config`.

    Corpora are hashed and read once per data config (a search has tokenized them already); later
    trials cost a few milliseconds.

    Args:
        config: the trial's effective trainer config (`TrainerObjective.config_for`).

    Returns:
        Its config as plain values, budget and model sizes, corpora and checkpoint files.
    """
    corpora = _corpora(config.data.model_dump_json())
    stream = TrainStream(corpora.target, corpora.auxiliary, config)
    datasets, tokenizer, vocab_size = corpora.records, corpora.tokenizer, corpora.vocab_size
    derived = {**_budget(config, stream), **model_sizes(config, vocab_size)}
    derived["budget/flops"] = derived["model/flops_per_token"] * derived["budget/train_tokens"]
    datasets = [_used(d, config, stream) for d in datasets]
    files = []
    if config.out_dir:
        tokenizer_file = BYTE_FILE if config.data.tokenizer == "byte" else BPE_FILE
        files = [str(Path(config.out_dir) / name) for name in (MODEL_FILE, tokenizer_file)]
    return TrialRecord(config.model_dump(), derived, datasets, tokenizer, files)


def model_sizes(config: TrainConfig, vocab_size: int) -> dict[str, float]:
    """Parameters of the trial's model, counted on the model itself built on the meta device (no
    memory), and its training FLOPs per token: 6·N + 12·depth·width·seq_len, N the weights every
    token multiplies (all but the embeddings), the second term attention over the context (PaLM,
    appendix B).

    Args:
        config: the trial's trainer config (its model and seq_len).
        vocab_size: the tokenizer's vocabulary size.

    Returns:
        model/parameters, model/matmul_parameters (N) and model/flops_per_token.
    """
    with torch.device("meta"):
        model = Transformer(config.model, vocab_size, config.data.seq_len)
    total = sum(p.numel() for p in model.parameters())
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    m = config.model
    attention = 12 * m.depth * m.width * config.data.seq_len
    return {
        "model/parameters": float(total),
        "model/matmul_parameters": float(matmul),
        "model/flops_per_token": float(6 * matmul + attention),
    }


def _budget(config: TrainConfig, stream: TrainStream) -> dict[str, float]:
    """U, E, r and T as the stream trains them (T rounded to whole sequences), target and auxiliary tokens."""
    return {
        "budget/unique_tokens": float(config.budget.unique_tokens),
        "budget/epochs": float(stream.epochs),
        "budget/mix_ratio": float(config.budget.mix_ratio),
        "budget/train_tokens": float(stream.n_tokens),
        "budget/target_tokens": float(stream.n_target * stream.seq_len),
        "budget/aux_tokens": float(stream.n_aux * stream.seq_len),
    }


def _used(record: DatasetRecord, config: TrainConfig, stream: TrainStream) -> DatasetRecord:
    used = {
        "target": config.budget.unique_tokens,
        "auxiliary": stream.n_aux * stream.seq_len,
    }.get(record.role, min(record.tokens, config.data.valid_tokens))
    return DatasetRecord(record.role, record.source, record.digest, record.tokens, record.documents, used)


@dataclass(frozen=True)
class _Corpora:
    """A data config's corpora, read once: records (used_tokens filled in per trial), the training
    token arrays (memory-mapped) and the tokenizer's fingerprint and vocabulary size."""

    records: list[DatasetRecord]
    target: TokenArray
    auxiliary: TokenArray | None
    tokenizer: str
    vocab_size: int


@lru_cache(maxsize=8)
def _corpora(data_json: str) -> _Corpora:
    """Hashing a corpus reads every byte of it (50 MB in the example): once per data config."""
    data = DataConfig.model_validate_json(data_json)
    tokenizer = build_tokenizer(data)
    roles = {"target": data.target, "auxiliary": data.auxiliary}
    roles |= {"target_valid": data.target_valid, "aux_valid": data.aux_valid}
    records, arrays = [], {}
    for role, source in roles.items():
        if source is None:
            continue
        order = None if role.endswith("_valid") else data.data_seed
        arrays[role] = tokens = load_tokens(source, tokenizer, data, order_seed=order)
        key = content_key(source, data.hf_max_documents)
        records.append(DatasetRecord(role, source, key, tokens.n_tokens, len(tokens.offsets) - 1, 0))
    return _Corpora(records, arrays["target"], arrays.get("auxiliary"), tokenizer.fingerprint, tokenizer.vocab_size)
