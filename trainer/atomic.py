"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

`atomic_write(path, write)` has `write` fill a temp file in `path`'s folder and then renames it
over `path` (`os.replace`, atomic on one file system), so a concurrent trial, or a run killed
mid-write, never leaves a torn file behind. `write_json` is the common case. Torch-free: analysis
code imports it without loading torch.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Write `path` at once: `write(tmp)` writes a temp path in the same folder, which then replaces `path`.

    The folder is created if missing. The temp name is unique per call (concurrent writers of one
    path do not share it) and keeps `path`'s suffix last, for writers that add a missing suffix
    (numpy's `save`). If `write` raises, the temp file is removed and `path` is left as it was.
    What `write` returns is ignored. Returns `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would stick to the final file; the writer creates it with the umask's.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: Path, data: Any, indent: int | None = 2) -> Path:
    """Write `data` as JSON to `path` atomically (`indent=None`: one compact line); returns `path`."""
    text = json.dumps(data, indent=indent)  # serialised first: a value JSON cannot hold fails before any write
    return atomic_write(path, lambda tmp: tmp.write_text(text))
