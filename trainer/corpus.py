"""Corpora: documents from files, folders or the Hugging Face hub, and the token cache.

A corpus is tokenized once into a memory-mapped array of ids in which every document is followed by
the tokenizer's eos id. The array lives under the cache directory, keyed by a hash of the corpus
*bytes*, the tokenizer and the document order, so parallel trials share one copy through the page
cache and an edited corpus can never be served from a stale entry.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from trainer.config import DataConfig
    from trainer.tokenizer import Tokenizer

SUFFIXES = (".txt", ".jsonl", ".parquet")
HF_PREFIX = "hf:"
# Part of every cache key: bump it when the cached layout or the document parsing changes.
_FORMAT = "automix-tokens-v1"


class CorpusError(ValueError):
    """A corpus cannot be used as configured; the one-line message says what is wrong and how to fix it."""


def digest(*parts: object) -> str:
    """A short stable hex hash of `parts` (their str forms), for cache keys."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(str(part).encode("utf-8") + b"\0")
    return h.hexdigest()


def source_files(source: str) -> list[Path]:
    """The readable files of a file or folder source, folders walked recursively in sorted order."""
    path = Path(source)
    if not path.exists():
        raise CorpusError(
            f"corpus path {source} does not exist: fix the path in data.* or use hf:NAME for a hub dataset"
        )
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise CorpusError(f"corpus file {source} is not .txt, .jsonl or .parquet: convert or rename it")
        return [path]
    files = sorted(
        (p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES),
        key=lambda p: p.relative_to(path).as_posix(),
    )
    if not files:
        raise CorpusError(f"corpus folder {source} holds no .txt, .jsonl or .parquet files: add some")
    return files


def content_key(source: str, hf_max_documents: int) -> str:
    """Hash of what a source contains: every file's bytes (sizes and mtimes can lie), in reading order.

    A hub dataset is keyed by its name and cap: hashing it would mean streaming it on every call.
    """
    if source.startswith(HF_PREFIX):
        return digest(source, hf_max_documents)
    h = hashlib.blake2b(digest_size=16)
    for path in source_files(source):
        # suffix (how it is parsed) and size (where it ends) keep file boundaries in the hash
        h.update(f"{path.suffix}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                h.update(chunk)
    return h.hexdigest()


def read_documents(source: str, hf_max_documents: int) -> list[str]:
    """All non-empty documents of a source, in file order."""
    if source.startswith(HF_PREFIX):
        docs = read_hub(source, 0, hf_max_documents)
    else:
        docs = [doc for path in source_files(source) for doc in _read_file(path)]
    if not docs:
        raise CorpusError(f"corpus {source} has no documents (every line or text field is empty): add text")
    return docs


def document_order(n_documents: int, seed: int) -> np.ndarray:
    """The seeded permutation of documents that fixes which tokens a budget uses."""
    return np.random.default_rng(seed % 2**64).permutation(n_documents)


def _read_file(path: Path) -> list[str]:
    try:
        if path.suffix == ".txt":
            lines = path.read_text(encoding="utf-8").split("\n")
            return [doc for line in lines if (doc := line.removesuffix("\r")).strip()]
        if path.suffix == ".jsonl":
            return _read_jsonl(path)
    except UnicodeDecodeError as e:
        raise CorpusError(f"corpus file {path} is not UTF-8 (byte {e.start}): re-encode it as UTF-8") from None
    return _read_parquet(path)


def _read_jsonl(path: Path) -> list[str]:
    docs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line).get("text")
            except (json.JSONDecodeError, AttributeError):
                text = None
            if not isinstance(text, str):
                raise CorpusError(f'{path} line {lineno} is not a JSON object with a string "text" field: fix it')
            if text.strip():
                docs.append(text)
    return docs


def _read_parquet(path: Path) -> list[str]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        if "text" not in schema.names:
            raise CorpusError(f'parquet file {path} has no "text" column (columns: {schema.names}): rename one')
        texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
    except pyarrow.ArrowException as e:
        raise CorpusError(f"parquet file {path} cannot be read ({e}): rewrite it") from None
    return [t for t in texts if isinstance(t, str) and t.strip()]


def read_hub(source: str, start: int, stop: int) -> list[str]:
    """The non-empty `text` fields of rows start..stop-1 of an `hf:NAME[:CONFIG]` source's train split.

    Streamed: rows past `stop` are never fetched. As in `datasets.load_dataset`, a NAME that is a
    local folder of data files (parquet, JSON lines, ...) is read from there, not from the hub.
    """
    import datasets  # heavy, and only needed for hub sources

    name, _, config = source[len(HF_PREFIX) :].partition(":")
    try:
        rows = datasets.load_dataset(name, config or None, split="train", streaming=True)
        docs = [row["text"] for row in itertools.islice(rows, start, stop)]
    except Exception as e:  # network, auth, unknown name or column: all reach the user as one line
        raise CorpusError(
            f"cannot stream hub dataset {name!r} (config {config or None}, split train, "
            f"field text): {type(e).__name__}: {e}"
        ) from e
    return [d for d in docs if isinstance(d, str) and d.strip()]


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
