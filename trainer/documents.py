"""Documents from files, folders or the Hugging Face hub: what a corpus contains and in which order.

A source is a file or folder of .txt (one document per line), .jsonl (a `text` field) or .parquet
files, or `hf:NAME[:CONFIG]`. `content_key` hashes a source's bytes: it keys the token cache
(trainer/token_cache.py) and the BPE tokenizer, so an edited corpus is never served stale.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np

from trainer.errors import CorpusError

SUFFIXES = (".txt", ".jsonl", ".parquet")
HF_PREFIX = "hf:"


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

    A hub dataset is keyed by its name and cap (hashing it would mean streaming it on every call); an
    `hf:` NAME that is a local folder by its files' bytes too, so an edited local dataset is re-read.
    """
    if source.startswith(HF_PREFIX):
        local = Path(source[len(HF_PREFIX) :].partition(":")[0])
        files = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else []
        return digest(source, hf_max_documents, *([_files_hash(files)] if files else []))
    return _files_hash(source_files(source))


def _files_hash(files: list[Path]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for path in files:
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
