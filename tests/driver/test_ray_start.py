"""A search without --address starts its own Ray, whatever cluster `ray start` left on record."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

import automix

pytestmark = pytest.mark.slow


def test_a_dead_cluster_on_record_is_not_joined(tmp_path, monkeypatch):
    # Where `ray start` records the cluster that a bare ray.init() joins: RAY_TMPDIR/ray. A directory of
    # this test's own (short: Ray's socket paths live under it), so tests running beside it never see
    # the dead record and a cluster they start never replaces it.
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray-"))
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    record = ray_tmp / "ray" / "ray_current_cluster"
    record.parent.mkdir(parents=True)
    record.write_text("127.0.0.1:9")  # nothing listens there: joining it would wait forever
    try:
        result = automix.search_objective(
            lambda params, report: {"loss": (params["x"] - 0.3) ** 2},
            {"x": {"type": "float", "low": 0.0, "high": 1.0}},
            study="local",
            work_dir=tmp_path / "w",
            n_trials=2,
            scheduler="none",
            metric="loss",
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert sorted(result.trials["state"]) == ["COMPLETE", "COMPLETE"]
