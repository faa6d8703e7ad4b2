"""Tokenizers: byte-level (the default), or byte-level BPE trained on both corpora and cached.

Both corpora go through one tokenizer (one model reads both), and a BPE learns from samples of both.
A tokenizer's `fingerprint` identifies it in the token cache's keys, so arrays made by another
tokenizer are never reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from trainer.atomic import atomic_write, write_json
from trainer.config import DataConfig
from trainer.documents import content_key, digest, document_order, read_documents

EOS = "<eos>"
BYTE_FILE = "byte_tokenizer.json"
BPE_FILE = "tokenizer.json"
# BPE is trained on at most this many UTF-8 bytes of each corpus: enough for a small vocabulary,
# and training stays a few seconds however large the corpora are.
BPE_SAMPLE_BYTES = 5_000_000


class Tokenizer(Protocol):
    """What the data pipeline, evaluation and export need from a tokenizer."""

    vocab_size: int
    eos_id: int
    fingerprint: str

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]: ...

    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...

    def save(self, directory: str | Path) -> Path: ...


class ByteTokenizer:
    """UTF-8 bytes are ids 0..255, eos is 256."""

    vocab_size = 257
    eos_id = 256
    fingerprint = "byte"

    def encode(self, text: str) -> list[int]:
        """Ids of `text` (no eos)."""
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One uint8 id array per text (no eos); arrays because corpora are millions of tokens."""
        return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of `ids`; eos is dropped, bytes that are not UTF-8 become U+FFFD."""
        ids = np.asarray(ids)
        return ids[ids < 256].astype(np.uint8).tobytes().decode("utf-8", errors="replace")

    def save(self, directory: str | Path) -> Path:
        """Write `byte_tokenizer.json` into `directory`; return its path."""
        meta = {"type": "byte", "vocab_size": self.vocab_size, "eos_id": self.eos_id}
        return write_json(Path(directory) / BYTE_FILE, meta, indent=None)


class BPETokenizer:
    """A byte-level BPE from the `tokenizers` library with an `<eos>` special token."""

    def __init__(self, tokenizer: tokenizers.Tokenizer):
        self.hf = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()
        self.eos_id = tokenizer.token_to_id(EOS)
        self.fingerprint = f"bpe{self.vocab_size}-{digest(tokenizer.to_str())}"

    def encode(self, text: str) -> list[int]:
        """Ids of `text` (no eos)."""
        return self.hf.encode(text).ids

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One id array per text (no eos), encoded in parallel by `tokenizers`."""
        return [np.asarray(e.ids, dtype=np.int64) for e in self.hf.encode_batch(list(texts))]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of `ids`; eos is dropped."""
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=True)

    def save(self, directory: str | Path) -> Path:
        """Write `tokenizer.json` (loadable by `transformers.PreTrainedTokenizerFast`); return its path."""
        return atomic_write(Path(directory) / BPE_FILE, lambda tmp: self.hf.save(str(tmp)))


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """The tokenizer that `save` wrote into `directory`."""
    directory = Path(directory)
    if (directory / BPE_FILE).exists():
        return BPETokenizer(tokenizers.Tokenizer.from_file(str(directory / BPE_FILE)))
    if (directory / BYTE_FILE).exists():
        return ByteTokenizer()
    raise FileNotFoundError(f"no {BPE_FILE} or {BYTE_FILE} in {directory}")


def build_tokenizer(cfg: DataConfig) -> Tokenizer:
    """The tokenizer `cfg` asks for; a BPE is trained on the first call and reloaded from the cache after.

    The BPE's cache key covers the content of both training corpora, the vocabulary size and the
    document order (data_seed) that picks the training sample.
    """
    if cfg.tokenizer == "byte":
        return ByteTokenizer()
    sources = [cfg.target] + ([cfg.auxiliary] if cfg.auxiliary else [])
    keys = [content_key(s, cfg.hf_max_documents) for s in sources]
    key = digest("bpe-v1", cfg.vocab_size, cfg.data_seed, BPE_SAMPLE_BYTES, *keys)
    path = Path(cfg.cache_dir) / "tokenizers" / key / BPE_FILE
    if not path.exists():
        sample = [doc for s in sources for doc in _sample(s, cfg)]
        bpe = _train_bpe(sample, cfg.vocab_size)
        atomic_write(path, lambda tmp: bpe.save(str(tmp)))  # a concurrent trial never reads half a file
    return BPETokenizer(tokenizers.Tokenizer.from_file(str(path)))


def _sample(source: str, cfg: DataConfig) -> list[str]:
    """The first BPE_SAMPLE_BYTES of `source` in its seeded document order (the order training uses)."""
    docs = read_documents(source, cfg.hf_max_documents)
    sample, size = [], 0
    for i in document_order(len(docs), cfg.data_seed):
        if size >= BPE_SAMPLE_BYTES:
            break
        sample.append(docs[i])
        size += len(docs[i].encode("utf-8"))
    return sample


def _train_bpe(texts: list[str], vocab_size: int) -> tokenizers.Tokenizer:
    tok = tokenizers.Tokenizer(models.BPE())
    # byte-level pre-tokenizer and decoder: every string round-trips exactly, no unknown tokens
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok
