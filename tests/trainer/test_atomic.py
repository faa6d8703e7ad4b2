"""Atomic writes: the whole new file or the old one, never half of one, and no temp files left."""

from __future__ import annotations

import json

import pytest

from trainer.atomic import atomic_write, write_json


def test_write_json_creates_the_folder_and_replaces_the_file(tmp_path):
    path = tmp_path / "sub" / "result.json"
    assert write_json(path, {"a": 1}) == path
    write_json(path, {"a": 2}, indent=None)
    assert json.loads(path.read_text()) == {"a": 2} and path.read_text() == '{"a": 2}'
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = write_json(tmp_path / "x.json", [1])

    def half(tmp):
        tmp.write_text("[1, ")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half)
    with pytest.raises(TypeError):
        write_json(path, {"not json": object()})
    assert json.loads(path.read_text()) == [1] and [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_the_temp_path_keeps_the_suffix(tmp_path):
    seen = []
    atomic_write(tmp_path / "ids.npy", lambda tmp: (seen.append(tmp), tmp.write_bytes(b"x")))
    assert seen[0].parent == tmp_path and seen[0].suffix == ".npy" and seen[0] != tmp_path / "ids.npy"
