"""`hf:` corpora through `datasets`' real loaders: a dataset written to disk here stands in for the hub.

A local folder of data files is what `datasets.load_dataset(NAME, ...)` reads before asking the hub,
so these tests run the same code path as `hf:wikimedia/wikipedia:20231101.sw`, offline.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import re
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from automix.config import load_config
from trainer.data import prepare
from trainer.documents import content_key, digest
from trainer.token_cache import load_tokens
from trainer.tokenizer import build_tokenizer
from trainer.train import run

SW_WORDS = "habari ya asubuhi watu wengi wanapenda kusoma vitabu shuleni leo na kesho mjini".split()
EN_WORDS = "the quick brown fox jumps over a lazy dog while the market rallied after news".split()
CAP = 50  # data.hf_max_documents: the rows training may read


def _rows(tag: str, words: list[str], n: int) -> list[str]:
    rng = random.Random(tag)
    return [f"{tag}{i:03d} " + " ".join(rng.choices(words, k=rng.randint(10, 25))) for i in range(n)]


def _hf_valid():
    """scripts/hf_valid.py as a module (scripts/ is not a package)."""
    path = Path(__file__).parents[2] / "scripts" / "hf_valid.py"
    spec = importlib.util.spec_from_file_location("hf_valid", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def hub_on_disk(tmp_path: Path, monkeypatch) -> list[dict]:
    """A parquet dataset `sw/` (the hub's layout: data/train-*.parquet) and a JSON-lines one `en/`, in
    the working directory; returns the recorded `datasets.load_dataset` calls."""
    (tmp_path / "sw" / "data").mkdir(parents=True)
    table = pa.table({"id": list(range(80)), "text": _rows("S", SW_WORDS, 80)})
    pq.write_table(table, tmp_path / "sw" / "data" / "train-00000-of-00001.parquet")
    (tmp_path / "en").mkdir()
    lines = [json.dumps({"text": doc}) for doc in _rows("E", EN_WORDS, 300)]
    (tmp_path / "en" / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    calls, real = [], datasets.load_dataset

    def spy(*args, **kwargs):
        calls.append({"args": args, **kwargs})
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    monkeypatch.chdir(tmp_path)
    return calls


def _study(tmp_path: Path, **data) -> Path:
    raw = {
        "study": "hf",
        "data": {
            "target": "hf:sw",  # relative: automix makes it absolute, as it does file paths
            "target_valid": "held_out/sw.jsonl",
            "auxiliary": "hf:en",
            "aux_valid": "held_out/en.txt",
            "hf_max_documents": CAP,
            "tokenizer": "bpe",
            "vocab_size": 300,
            "seq_len": 16,
            "cache_dir": str(tmp_path / "cache"),
            **data,
        },
        "model": {"width": 16, "base_width": 16, "depth": 1, "n_heads": 2},
        "optim": {"batch_size": 4, "warmup_tokens": 200},
        "budget": {"unique_tokens": 800, "epochs": 2, "mix_ratio": 0.25},
        "eval_every_tokens": 1000,
        "device": "cpu",
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _tags(text: str, tag: str) -> set[int]:
    return {int(n) for n in re.findall(tag + r"(\d{3})", text)}


def test_hf_dataset_streams_capped_through_prepare_tokenizer_and_training(hub_on_disk, tmp_path):
    study = _study(tmp_path)
    assert _hf_valid().main([str(study), "--documents", "20"]) == 0
    config = load_config(study).base_train_config()
    assert config.data.target == f"hf:{tmp_path / 'sw'}"

    summary = prepare(config)

    # Every dataset was streamed from its folder, train split (no download of the whole set).
    assert {call["args"][0] for call in hub_on_disk} == {str(tmp_path / "sw"), str(tmp_path / "en")}
    assert all(call["streaming"] and call["split"] == "train" for call in hub_on_disk)
    # Training reads exactly the first CAP rows, and the BPE was trained on them.
    tokenizer = build_tokenizer(config.data)
    assert summary.tokenizer == tokenizer.fingerprint and summary.tokenizer.startswith("bpe")
    target = load_tokens(config.data.target, tokenizer, config.data, order_seed=config.data.data_seed)
    assert len(target.offsets) - 1 == CAP
    assert _tags(tokenizer.decode(target.ids), "S") == set(range(CAP))
    # The held-out files hold the 20 rows after the cap: none of them is in training.
    valid = [json.loads(line)["text"] for line in Path(config.data.target_valid).read_text().splitlines()]
    assert [_tags(doc, "S") for doc in valid] == [{i} for i in range(CAP, CAP + 20)]
    assert _tags(Path(config.data.aux_valid).read_text(), "E") == set(range(CAP, CAP + 20))
    assert summary.target_valid_windows > 0 and summary.aux_valid_windows > 0

    result = run(config)
    assert math.isfinite(result.metrics["target_val_loss"])
    assert result.metrics["target_val_loss"] < math.log(summary.vocab_size)  # it learned something


def test_hf_valid_keeps_existing_files_and_refuses_a_cap_past_the_end(hub_on_disk, tmp_path, capsys):
    hf_valid = _hf_valid()
    study = _study(tmp_path)
    held_out = tmp_path / "held_out" / "sw.jsonl"
    held_out.parent.mkdir()
    held_out.write_text('{"text": "mine"}\n')
    assert hf_valid.main([str(study), "--documents", "5"]) == 0
    assert held_out.read_text() == '{"text": "mine"}\n'  # never overwritten
    assert "exists: kept" in capsys.readouterr().out

    past_the_end = _study(tmp_path, hf_max_documents=80, target_valid="held_out/other.jsonl")
    assert hf_valid.main([str(past_the_end)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no text after its first 80 rows" in err


def test_hub_names_stay_and_local_folders_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sw").mkdir()
    study = _study(tmp_path, target="hf:sw:default", auxiliary="hf:wikimedia/wikipedia:20231101.en")
    data = load_config(study).data
    assert data.target == f"hf:{tmp_path / 'sw'}:default"
    assert data.auxiliary == "hf:wikimedia/wikipedia:20231101.en"  # no such folder: a hub name


def test_an_edited_local_dataset_gets_a_new_cache_key_and_a_hub_name_keeps_its_own(hub_on_disk, tmp_path):
    """A local `hf:` folder is keyed by its files' bytes, so editing it re-tokenises; a hub name by name and cap."""
    source = f"hf:{tmp_path / 'en'}"
    before = content_key(source, CAP)
    assert content_key(source, CAP) == before
    with open(tmp_path / "en" / "train.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"text": "an edited row"}) + "\n")
    assert content_key(source, CAP) != before
    hub = "hf:wikimedia/wikipedia:20231101.en"
    assert content_key(hub, CAP) == digest(hub, CAP) != content_key(hub, CAP + 1)
