"""The token cache: a corpus tokenized once into a memory-mapped array of ids.

Every document is followed by the tokenizer's eos id. The array lives under the cache directory,
keyed by a hash of the corpus *bytes*, the tokenizer and the document order, so parallel trials
share one copy through the page cache and an edited corpus can never be served from a stale entry.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainer.documents import content_key, digest, document_order, read_documents

if TYPE_CHECKING:
    from trainer.config import DataConfig
    from trainer.tokenizer import Tokenizer

# Part of every cache key: bump it when the cached layout or the document parsing changes.
_FORMAT = "automix-tokens-v1"


@dataclass(frozen=True)
class TokenArray:
    """A tokenized corpus: `ids` (memory-mapped) with an eos after every document; document i is
    `ids[offsets[i] : offsets[i + 1] - 1]`."""

    source: str
    ids: np.ndarray
    offsets: np.ndarray

    @property
    def n_tokens(self) -> int:
        """Tokens including the eos separators."""
        return len(self.ids)


def token_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    """The narrowest unsigned dtype that holds every id."""
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def load_tokens(source: str, tokenizer: Tokenizer, cfg: DataConfig, order_seed: int | None) -> TokenArray:
    """The cached token array of `source`, tokenizing it on the first call.

    `order_seed=None` keeps file order (validation); an int stores the documents in
    `document_order(n, order_seed)`, so a training pool is simply a prefix of the array.
    """
    order = "file" if order_seed is None else f"seed{order_seed}"
    key = digest(_FORMAT, content_key(source, cfg.hf_max_documents), tokenizer.fingerprint, order)
    folder = Path(cfg.cache_dir) / "tokens" / key
    if not folder.is_dir():
        docs = read_documents(source, cfg.hf_max_documents)
        if order_seed is not None:
            docs = [docs[i] for i in document_order(len(docs), order_seed)]
        _write_tokens(folder, docs, tokenizer, {"source": source, "tokenizer": tokenizer.fingerprint, "order": order})
    return TokenArray(
        source, np.load(folder / "ids.npy", mmap_mode="r"), np.load(folder / "offsets.npy", mmap_mode="r")
    )


def _write_tokens(folder: Path, docs: list[str], tokenizer: Tokenizer, meta: dict) -> None:
    encoded = tokenizer.encode_batch(docs)
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) + 1 for e in encoded], out=offsets[1:])
    ids = np.empty(offsets[-1], dtype=token_dtype(tokenizer.vocab_size))
    ids[offsets[1:] - 1] = tokenizer.eos_id
    for start, doc_ids in zip(offsets[:-1], encoded, strict=True):
        ids[start : start + len(doc_ids)] = doc_ids
    # Build the entry in a private folder and rename it into place: the rename is atomic, so a
    # concurrent trial sees either no entry or a complete one, never a half-written array.
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        np.save(tmp / "offsets.npy", offsets)
        np.save(tmp / "ids.npy", ids)
        meta = {**meta, "n_documents": len(docs), "n_tokens": int(offsets[-1])}
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False))
        try:
            os.replace(tmp, folder)
        except OSError:
            if not folder.is_dir():  # not a lost race with an identical writer: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
