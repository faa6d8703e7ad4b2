"""A search without --address starts its own Ray, whatever cluster `ray start` left on record."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

import automix

pytestmark = [pytest.mark.slow, pytest.mark.serial]  # Ray: one at a time (pyproject.toml)

# Where `ray start` (and Ray's test cluster) record the cluster that a bare ray.init() joins.
RECORD = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"


def test_a_dead_cluster_on_record_is_not_joined(tmp_path):
    before = RECORD.read_text() if RECORD.exists() else None
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text("127.0.0.1:9")  # nothing listens there: joining it would wait forever
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
        RECORD.write_text(before) if before is not None else RECORD.unlink(missing_ok=True)
    assert sorted(result.trials["state"]) == ["COMPLETE", "COMPLETE"]
