"""Write held-out validation files for a study whose corpora are `hf:` datasets.

    .venv/bin/python scripts/hf_valid.py CONFIG [key=value ...] [--documents N]

Training reads the first `data.hf_max_documents` rows of a dataset's train split; this writes the
N rows after them (default 10,000) to `data.target_valid` for `data.target` and to
`data.aux_valid` for `data.auxiliary`, wherever those are `hf:` sources. A `.jsonl` file keeps
each document whole; a `.txt` file gets one line per non-empty line of text (a `.txt` corpus is
one document per line). An existing file is kept: delete it to write it again, e.g. after raising
`hf_max_documents`, which would otherwise let training read the held-out rows. Exits 2 with one
line on a config or dataset problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from automix.config import load_config
from automix.errors import ConfigError
from trainer.atomic import atomic_write
from trainer.documents import HF_PREFIX, read_hub
from trainer.errors import CorpusError

SUFFIXES = (".jsonl", ".txt")


def write_held_out(source: str, out: Path, start: int, documents: int) -> None:
    """Rows start..start+documents-1 of `source` into `out` (.jsonl or .txt); an existing `out` is kept."""
    if out.exists():
        print(f"{out} exists: kept (delete it to write it again)")
        return
    if out.suffix not in SUFFIXES:
        raise CorpusError(f"validation file {out} must end in .jsonl or .txt to be written here")
    docs = read_hub(source, start, start + documents)
    if not docs:
        raise CorpusError(f"{source} has no text after its first {start:,} rows: lower data.hf_max_documents")
    if out.suffix == ".jsonl":
        lines = [json.dumps({"text": doc}, ensure_ascii=False) for doc in docs]
    else:
        lines = [line for doc in docs for line in doc.split("\n") if line.strip()]
    atomic_write(out, lambda tmp: tmp.write_text("\n".join(lines) + "\n", encoding="utf-8"))
    print(f"{out}: {len(docs):,} documents of {source}, after the {start:,} rows training may read")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the study config (YAML)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, as for automix search")
    parser.add_argument("--documents", type=int, default=10_000, help="rows to hold out per dataset")
    args = parser.parse_args(argv)
    try:
        data = load_config(args.config, args.overrides).data
        pairs = [(data.target, data.target_valid), (data.auxiliary, data.aux_valid)]
        pairs = [(src, out) for src, out in pairs if src and out and src.startswith(HF_PREFIX)]
        if not pairs:
            raise ConfigError("neither data.target nor data.auxiliary is an hf: dataset: nothing to hold out")
        for source, out in pairs:
            write_held_out(source, Path(out), data.hf_max_documents, args.documents)
    except (ConfigError, CorpusError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
