"""Fixtures: tiny corpora written to tmp_path, the shared real corpora, and a study config on the tiny ones."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from trainer.config import TrainConfig

AR_WORDS = "السلام عليكم في المدينة الكبيرة قال الرئيس إن الحكومة ستعمل على تحسين الاقتصاد".split()
EN_WORDS = "the quick brown fox jumps over a lazy dog while the market rallied after news".split()


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    """One automix cache (token arrays, MLflow's empty store) per test session, not the user's."""
    os.environ["AUTOMIX_CACHE"] = str(tmp_path_factory.mktemp("automix-cache"))
    yield
    os.environ.pop("AUTOMIX_CACHE", None)


@dataclass(frozen=True)
class TinyCorpora:
    """Paths of a tiny study: every document starts with a unique tag (T007, A123) that tests can find."""

    target: Path  # folder of two .txt files, Arabic words, tags T000..
    target_valid: Path
    auxiliary: Path  # .jsonl, English words, tags A000..
    aux_valid: Path
    cache: Path

    def target_docs(self) -> list[str]:
        """The target documents in file order, read independently of trainer.documents."""
        return [
            line
            for f in sorted(self.target.glob("*.txt"))
            for line in f.read_text(encoding="utf-8").split("\n")
            if line
        ]


def _docs(tag: str, words: list[str], n: int, rng: random.Random) -> list[str]:
    return [f"{tag}{i:03d} " + " ".join(rng.choices(words, k=rng.randint(5, 25))) for i in range(n)]


@pytest.fixture
def tiny(tmp_path: Path) -> TinyCorpora:
    """60 target documents (~10k bytes) and 400 auxiliary documents (~33k bytes)."""
    rng = random.Random(0)
    target = tmp_path / "ar" / "train"
    target.mkdir(parents=True)
    docs = _docs("T", AR_WORDS, 60, rng)
    # a blank line is not a document
    (target / "a.txt").write_text("\n".join(docs[:25]) + "\n\n", encoding="utf-8")
    (target / "b.txt").write_text("\n".join(docs[25:]) + "\n", encoding="utf-8")
    (target / "notes.md").write_text("not a corpus file\n", encoding="utf-8")
    target_valid = tmp_path / "ar" / "valid.txt"
    target_valid.write_text("\n".join(_docs("V", AR_WORDS, 10, rng)) + "\n", encoding="utf-8")
    (tmp_path / "en").mkdir()
    auxiliary = tmp_path / "en" / "train.jsonl"
    auxiliary.write_text(
        "".join(json.dumps({"text": d}) + "\n" for d in _docs("A", EN_WORDS, 400, rng)), encoding="utf-8"
    )
    aux_valid = tmp_path / "en" / "valid.txt"
    aux_valid.write_text("\n".join(_docs("W", EN_WORDS, 10, rng)) + "\n", encoding="utf-8")
    return TinyCorpora(target, target_valid, auxiliary, aux_valid, tmp_path / "cache")


@pytest.fixture
def make_cfg(tiny: TinyCorpora):
    """Build a TrainConfig on the tiny corpora: budget and run keywords by name, the rest via `data=`."""

    def make(
        unique_tokens: int = 1000,
        epochs: float = 1.0,
        mix_ratio: float = 0.0,
        seed: int = 0,
        batch_size: int = 4,
        data: dict | None = None,
        **budget,
    ) -> TrainConfig:
        data = {
            "target": str(tiny.target),
            "target_valid": str(tiny.target_valid),
            "auxiliary": str(tiny.auxiliary),
            "aux_valid": str(tiny.aux_valid),
            "seq_len": 16,
            "cache_dir": str(tiny.cache),
            **(data or {}),
        }
        return TrainConfig(
            data=data,
            budget={"unique_tokens": unique_tokens, "epochs": epochs, "mix_ratio": mix_ratio, **budget},
            optim={"batch_size": batch_size},
            seed=seed,
        )

    return make


@pytest.fixture
def shared_data() -> Path:
    """The shared real corpora (../shared/data next to the repository); skipped where absent."""
    path = Path(__file__).parents[1].parent / "shared" / "data"
    if not (path / "ar" / "valid.txt").exists():
        pytest.skip(f"shared corpora not found at {path}")
    return path


@pytest.fixture
def study_yaml(tmp_path: Path, tiny):
    def write(**sections) -> Path:
        raw = {
            "study": "t",
            "work_dir": str(tmp_path / "work"),
            "data": {
                "target": str(tiny.target),
                "target_valid": str(tiny.target_valid),
                "auxiliary": str(tiny.auxiliary),
                "aux_valid": str(tiny.aux_valid),
                "seq_len": 16,
            },
            "budget": {"unique_tokens": 2000},
            "search": {"space": "paper", "n_trials": 2},
        }
        for key, value in sections.items():
            raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return write


@pytest.fixture
def real_study(tmp_path: Path, shared_data: Path):
    """Write a tiny real-trainer study on the shared corpora: returns (config path, work dir).

    `params` is the space's `params` mapping; keyword sections are merged over the defaults.
    """

    def write(name: str, params: dict, **sections) -> tuple[Path, Path]:
        space = tmp_path / f"{name}_space.yaml"
        space.write_text(yaml.safe_dump({"params": params}))
        config = {
            "study": name,
            "work_dir": str(tmp_path / "w"),
            "data": {
                "target": str(shared_data / "ar" / "train" / "ant_cnn.txt"),
                "target_valid": str(shared_data / "ar" / "valid.txt"),
                "auxiliary": str(shared_data / "en" / "train"),
                "aux_valid": str(shared_data / "en" / "valid.txt"),
                "seq_len": 64,
                "valid_tokens": 4096,
            },
            "model": {"width": 32, "base_width": 32, "depth": 1, "n_heads": 2},
            "optim": {"batch_size": 8, "warmup_tokens": 2000},
            "budget": {"unique_tokens": 20000},
            "eval_every_tokens": 20000,
            "search": {"space": str(space), "n_trials": 3, "concurrency": 2},
        }
        for key, value in sections.items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path, tmp_path / "w"

    return write


@pytest.fixture
def usage_error(capsys):
    """`check(args, *needles)`: `automix args` exits 2 with one line on stderr holding every needle; the line."""
    from automix.cli import main

    def check(args: list[str], *needles: str) -> str:
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        for needle in needles:
            assert needle in err, err
        return err

    return check
