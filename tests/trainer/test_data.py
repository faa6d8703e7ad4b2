"""Data semantics: pool, repetition, mixing, determinism, cache, errors, tokenizers."""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from trainer import tokenizer
from trainer.config import TrainConfig
from trainer.data import build_stream, load_datasets, load_validation, prepare
from trainer.documents import document_order, read_documents
from trainer.errors import CorpusError
from trainer.token_cache import load_tokens
from trainer.tokenizer import ByteTokenizer, build_tokenizer, load_tokenizer

L = 16  # seq_len of make_cfg


def _expected_ids(docs: list[str], seed: int) -> np.ndarray:
    """Byte ids of `docs` in seeded document order, each followed by eos: what the pool is a prefix of."""
    ids = []
    for i in document_order(len(docs), seed):
        ids += list(docs[i].encode("utf-8")) + [256]
    return np.array(ids)


def _all_rows(stream) -> np.ndarray:
    """Every training sequence as [n_sequences, L+1] ids, rebuilt from the (x, y) batches."""
    rows = []
    for step in range(stream.n_batches):
        x, y = stream.batch(step)
        assert torch.equal(x[:, 1:], y[:, :-1])
        rows.append(torch.cat([x, y[:, -1:]], dim=1).numpy())
    return np.concatenate(rows)


def _tags(rows: np.ndarray, tag: str) -> set[str]:
    text = ByteTokenizer().decode(rows.ravel())
    return set(re.findall(tag + r"\d{3}", text))


# ---------------------------------------------------------------- stream semantics


@pytest.mark.parametrize(("epochs", "mix_ratio"), [(1, 0), (2.5, 0.25), (4, 0.5), (1.4, 0.8)])
def test_counts_match_budget(make_cfg, epochs, mix_ratio):
    cfg = make_cfg(epochs=epochs, mix_ratio=mix_ratio)
    stream = build_stream(cfg)
    n_chunks = 1000 // L
    assert stream.n_chunks == n_chunks
    assert stream.n_target == round(epochs * n_chunks)
    assert stream.n_sequences == round(stream.n_target / (1 - mix_ratio))
    target_tokens = int((~stream.is_aux).sum()) * L
    aux_tokens = int(stream.is_aux.sum()) * L
    assert target_tokens == stream.n_target * L == round(epochs * n_chunks) * L
    assert aux_tokens == stream.n_aux * L
    assert abs(stream.n_aux / stream.n_sequences - mix_ratio) <= 1 / stream.n_sequences
    assert stream.n_batches == math.ceil(stream.n_sequences / 4)
    assert sum(stream.tokens_per_batch(s) for s in range(stream.n_batches)) == stream.n_tokens
    shapes = [stream.batch(s)[0].shape for s in range(stream.n_batches)]
    assert sum(s[0] * s[1] for s in shapes) == stream.n_tokens
    assert all(s == (4, L) for s in shapes[:-1]) and shapes[-1][1] == L


@pytest.mark.parametrize("epochs", [1, 2.5, 3.7])
def test_repetition_walks_a_fresh_permutation_each_epoch(make_cfg, epochs):
    stream = build_stream(make_cfg(epochs=epochs, mix_ratio=0.3))
    chunks = stream.source_index[~stream.is_aux]
    counts = np.bincount(chunks, minlength=stream.n_chunks)
    assert set(counts.tolist()) <= {math.floor(epochs), math.ceil(epochs)}
    assert counts.sum() == stream.n_target
    full, rest = divmod(len(chunks), stream.n_chunks)
    epochs_seen = [chunks[e * stream.n_chunks : (e + 1) * stream.n_chunks] for e in range(full)]
    for walk in epochs_seen:
        assert np.array_equal(np.sort(walk), np.arange(stream.n_chunks))
    if full > 1:
        assert not np.array_equal(epochs_seen[0], epochs_seen[1])  # reshuffled, not replayed
    assert len(set(chunks[full * stream.n_chunks :].tolist())) == rest
    # auxiliary windows: consecutive and never repeated
    assert np.array_equal(stream.source_index[stream.is_aux], np.arange(stream.n_aux))


def test_rows_come_from_the_pool_and_auxiliary_windows(make_cfg, tiny):
    unique = 1000  # not a multiple of L: the last chunk ends at 62*16+1 = 993 <= U+1
    cfg = make_cfg(unique_tokens=unique, epochs=2, mix_ratio=0.5, data={"data_seed": 3})
    stream = build_stream(cfg)
    rows = _all_rows(stream)
    pool = _expected_ids(tiny.target_docs(), seed=3)[: unique + 1]
    aux_docs = [json.loads(line)["text"] for line in tiny.auxiliary.read_text(encoding="utf-8").splitlines()]
    aux = _expected_ids(aux_docs, seed=3)
    window = np.arange(L + 1)
    for row, is_aux, i in zip(rows, stream.is_aux, stream.source_index, strict=True):
        source = aux if is_aux else pool
        assert i * L + L + 1 <= len(source)  # never past the first U+1 target tokens
        assert np.array_equal(row, source[i * L + window])
    assert _tags(rows[~stream.is_aux], "A") == set() and _tags(rows[stream.is_aux], "T") == set()


def test_same_seed_same_batches_other_seed_other_order(make_cfg):
    a = build_stream(make_cfg(epochs=3, mix_ratio=0.25, seed=1))
    b = build_stream(make_cfg(epochs=3, mix_ratio=0.25, seed=1))
    c = build_stream(make_cfg(epochs=3, mix_ratio=0.25, seed=2))
    assert np.array_equal(_all_rows(a), _all_rows(b))
    assert not np.array_equal(a.is_aux, c.is_aux)
    assert not np.array_equal(a.source_index[~a.is_aux], c.source_index[~c.is_aux])
    assert (a.n_target, a.n_aux) == (c.n_target, c.n_aux)
    assert np.array_equal(np.bincount(a.source_index[~a.is_aux]), np.bincount(c.source_index[~c.is_aux]))


def test_batch_is_a_pure_function_of_step(make_cfg):
    cfg = make_cfg(epochs=2.5, mix_ratio=0.25)
    stream = build_stream(cfg)
    late = stream.batch(stream.n_batches - 1)
    for step in (3, 0, 7):
        stream.batch(step)
    resumed = build_stream(cfg)  # a resumed run starts at a late step on a fresh object
    assert all(torch.equal(u, v) for u, v in zip(late, resumed.batch(stream.n_batches - 1), strict=True))
    with pytest.raises(IndexError):
        stream.batch(stream.n_batches)


def test_data_seed_picks_the_documents_of_the_pool(make_cfg):
    pools = [
        _tags(_all_rows(s)[~s.is_aux], "T")
        for s in (build_stream(make_cfg(data={"data_seed": seed})) for seed in (0, 0, 1))
    ]
    assert pools[0] == pools[1]
    assert pools[0] != pools[2]
    assert 0 < len(pools[0]) < 60  # U covers some, not all, documents


def test_fixed_tokens_mode_derives_epochs(make_cfg):
    # U a multiple of L, so that E = (1-r)T/U is the realised target sequences per chunk
    cfg = make_cfg(unique_tokens=62 * L, mix_ratio=0.25, mode="fixed_tokens", train_tokens=5000)
    stream = build_stream(cfg)
    assert stream.n_sequences == 5000 // L
    assert stream.n_target == round(0.75 * (5000 // L))
    assert stream.n_aux == stream.n_sequences - stream.n_target
    assert stream.epochs == pytest.approx(cfg.budget.effective_epochs, abs=1 / stream.n_chunks)


# ---------------------------------------------------------------- errors


def _error(cfg: TrainConfig) -> str:
    with pytest.raises(CorpusError) as info:
        prepare(cfg)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_error_missing_path(make_cfg, tiny):
    missing = tiny.target.parent / "nope"
    assert str(missing) in _error(make_cfg(data={"target": str(missing)}))


def test_error_folder_without_corpus_files(make_cfg, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no .txt, .jsonl or .parquet" in _error(make_cfg(data={"target": str(tmp_path / "empty")}))


def test_error_empty_corpus(make_cfg, tmp_path):
    (tmp_path / "blank.txt").write_text("\n  \n\n", encoding="utf-8")
    assert "no documents" in _error(make_cfg(data={"target": str(tmp_path / "blank.txt")}))


def test_error_target_smaller_than_unique_tokens(make_cfg, tiny):
    n = sum(len(d.encode()) + 1 for d in tiny.target_docs())
    message = _error(make_cfg(unique_tokens=n))
    assert f"{n:,} tokens" in message and f"{n + 1:,}" in message and "unique_tokens" in message
    prepare(make_cfg(unique_tokens=n - 1))  # exactly enough: the whole corpus is the pool


def test_error_auxiliary_too_small(make_cfg, tiny):
    aux_docs = [json.loads(line)["text"] for line in tiny.auxiliary.read_text(encoding="utf-8").splitlines()]
    available = sum(len(d.encode("utf-8")) + 1 for d in aux_docs)
    cfg = make_cfg(epochs=8, mix_ratio=0.9)
    n_target = round(8 * (1000 // L))
    needed = (round(n_target / 0.1) - n_target) * L + 1
    assert needed > available
    message = _error(cfg)
    for number in (f"{available:,}", "r=0.9", f"T={cfg.budget.total_tokens:,}", f"{needed:,}"):
        assert number in message


def test_error_mix_without_auxiliary(make_cfg):
    assert "data.auxiliary" in _error(make_cfg(mix_ratio=0.2, data={"auxiliary": None}))


def test_error_bad_jsonl_and_parquet_column(make_cfg, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no text"}\n', encoding="utf-8")
    assert f"{bad} line 2" in _error(make_cfg(mix_ratio=0.1, data={"auxiliary": str(bad)}))
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"body": ["x"]}), table)
    assert '"text" column' in _error(make_cfg(mix_ratio=0.1, data={"auxiliary": str(table)}))


def test_error_validation_too_small(make_cfg, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("tiny\n", encoding="utf-8")
    assert "validation set" in _error(make_cfg(data={"target_valid": str(short)}))


# ---------------------------------------------------------------- readers, validation, cache


def test_parquet_and_jsonl_sources_read_the_text_field(tmp_path):
    pq.write_table(pa.table({"text": ["one doc", "", "two doc"], "id": [1, 2, 3]}), tmp_path / "p.parquet")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "j.jsonl").write_text(json.dumps({"text": "three"}) + "\n", encoding="utf-8")
    assert read_documents(str(tmp_path), 1) == ["one doc", "two doc", "three"]


def test_validation_is_the_file_prefix_in_windows(make_cfg, tiny):
    cfg = make_cfg(data={"valid_tokens": 200})
    windows = load_validation(str(tiny.target_valid), ByteTokenizer(), cfg.data)
    docs = tiny.target_valid.read_text(encoding="utf-8").split("\n")[:-1]
    ids = np.array([i for d in docs for i in [*d.encode(), 256]])[:200]
    assert windows.dtype == torch.long and windows.shape == ((200 - 1) // L, L + 1)
    for k, w in enumerate(windows.numpy()):
        assert np.array_equal(w, ids[k * L : k * L + L + 1])
    data = load_datasets(cfg)
    assert data.aux_valid is not None and data.aux_valid.shape[1] == L + 1


def test_second_prepare_hits_the_cache(make_cfg, monkeypatch, tiny):
    cfg = make_cfg(epochs=2, mix_ratio=0.5)
    first = prepare(cfg)
    entries = {p: p.stat().st_mtime_ns for p in tiny.cache.rglob("ids.npy")}
    assert len(entries) == 4  # target, auxiliary, two validation sets

    def no_tokenizing(self, texts):
        raise AssertionError("re-tokenized a cached corpus")

    monkeypatch.setattr(ByteTokenizer, "encode_batch", no_tokenizing)
    assert prepare(cfg) == first
    assert {p: p.stat().st_mtime_ns for p in tiny.cache.rglob("ids.npy")} == entries
    assert isinstance(build_stream(cfg)._pool, np.memmap)


def test_cache_key_follows_content_not_size_or_mtime(make_cfg, tiny):
    data, tok = make_cfg().data, ByteTokenizer()
    before = load_tokens(str(tiny.target), tok, data, order_seed=None)
    path = tiny.target / "a.txt"
    stat = path.stat()
    path.write_text(path.read_text(encoding="utf-8").replace("T000", "T999"), encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime: only bytes differ
    assert path.stat().st_size == stat.st_size
    after = load_tokens(str(tiny.target), tok, data, order_seed=None)
    assert len(list(tiny.cache.rglob("ids.npy"))) == 2
    assert "T000" in tok.decode(before.ids) and "T999" not in tok.decode(before.ids)
    assert "T999" in tok.decode(after.ids) and "T000" not in tok.decode(after.ids)


def test_data_seed_is_part_of_the_cache_key(make_cfg, tiny):
    tok = ByteTokenizer()
    a = load_tokens(str(tiny.target), tok, make_cfg(data={"data_seed": 0}).data, order_seed=0)
    b = load_tokens(str(tiny.target), tok, make_cfg(data={"data_seed": 1}).data, order_seed=1)
    assert a.n_tokens == b.n_tokens and not np.array_equal(a.ids, b.ids)
    assert a.ids.dtype == np.uint16 and a.offsets[-1] == a.n_tokens


# ---------------------------------------------------------------- tokenizers

ARABIC = "قال الرئيس إن الحكومة ستعمل على تحسين الاقتصاد، وذلك في 2024!"
ENGLISH = "The quick brown fox — naïve café — jumps over 13 lazy dogs.\tEnd"


def test_bpe_trains_round_trips_and_reloads_from_cache(make_cfg, monkeypatch, tmp_path):
    cfg = make_cfg(data={"tokenizer": "bpe", "vocab_size": 300})
    tok = build_tokenizer(cfg.data)
    assert 257 < tok.vocab_size <= 300 and tok.hf.id_to_token(tok.eos_id) == "<eos>"
    for text in (ARABIC, ENGLISH, ARABIC + " " + ENGLISH):
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert len(ids) < len(text.encode("utf-8"))  # merges were learnt from both languages
    assert tok.decode([*tok.encode("ab"), tok.eos_id]) == "ab"

    (path,) = tmp_path.joinpath("cache", "tokenizers").rglob("tokenizer.json")
    mtime = path.stat().st_mtime_ns

    def no_training(texts, vocab_size):
        raise AssertionError("retrained a cached tokenizer")

    monkeypatch.setattr(tokenizer, "_train_bpe", no_training)
    again = build_tokenizer(cfg.data)
    assert again.fingerprint == tok.fingerprint and path.stat().st_mtime_ns == mtime
    monkeypatch.undo()

    elsewhere = make_cfg(data={"tokenizer": "bpe", "vocab_size": 300, "cache_dir": str(tmp_path / "c2")})
    assert build_tokenizer(elsewhere.data).fingerprint == tok.fingerprint  # deterministic training
    other = make_cfg(data={"tokenizer": "bpe", "vocab_size": 280})
    assert build_tokenizer(other.data).fingerprint != tok.fingerprint


def test_bpe_stream_and_summary(make_cfg):
    summary = prepare(make_cfg(epochs=2, mix_ratio=0.25, data={"tokenizer": "bpe", "vocab_size": 300}))
    assert summary.tokenizer.startswith("bpe") and summary.vocab_size <= 300
    assert summary.train_tokens == (summary.n_target + summary.n_aux) * L
    assert summary.n_target == round(2 * summary.n_chunks)


@pytest.mark.parametrize("kind", ["byte", "bpe"])
def test_tokenizer_save_and_load(make_cfg, tmp_path, kind):
    tok = build_tokenizer(make_cfg(data={"tokenizer": kind, "vocab_size": 300}).data)
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert (loaded.fingerprint, loaded.vocab_size, loaded.eos_id) == (
        tok.fingerprint,
        tok.vocab_size,
        tok.eos_id,
    )
    assert loaded.encode(ARABIC) == tok.encode(ARABIC)


def test_byte_tokenizer():
    tok = ByteTokenizer()
    ids = tok.encode(ARABIC)
    assert max(ids) < 256 and len(ids) == len(ARABIC.encode("utf-8"))
    assert tok.decode([*ids, tok.eos_id]) == ARABIC
    assert [a.tolist() for a in tok.encode_batch([ARABIC, ""])] == [ids, []]


# ---------------------------------------------------------------- real corpora


def test_shared_corpora(shared_data, tmp_path):
    cfg = TrainConfig(
        data={
            "target": str(shared_data / "ar" / "train"),
            "target_valid": str(shared_data / "ar" / "valid.txt"),
            "auxiliary": str(shared_data / "en" / "train"),
            "aux_valid": str(shared_data / "en" / "valid.txt"),
            "cache_dir": str(tmp_path / "cache"),
        },
        budget={"unique_tokens": 50_000, "epochs": 2, "mix_ratio": 0.5},
    )
    summary = prepare(cfg)
    expected = {}
    for lang in ("ar", "en"):
        lines = [
            line
            for f in sorted((shared_data / lang / "train").glob("*.txt"))
            for line in f.read_text(encoding="utf-8").split("\n")
            if line.strip()
        ]
        expected[lang] = sum(len(line.encode("utf-8")) + 1 for line in lines)
    assert (summary.target_tokens, summary.aux_tokens) == (expected["ar"], expected["en"])
    assert summary.n_chunks == 50_000 // 128 and summary.n_target == 2 * summary.n_chunks
    assert summary.n_aux == summary.n_target and summary.train_tokens == 4 * summary.n_chunks * 128
    assert summary.target_valid_windows == summary.aux_valid_windows == (65536 - 1) // 128

    stream = build_stream(cfg)
    x, _ = stream.batch(0)
    text = [ByteTokenizer().decode(row) for row in x.numpy()]
    for row, is_aux in zip(text, stream.is_aux[: len(text)], strict=True):
        arabic = len(re.findall("[\u0600-\u06ff]", row))
        assert (arabic < len(row) / 10) if is_aux else (arabic > len(row) / 4)
