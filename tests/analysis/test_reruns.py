"""`train_many`: re-runs cached one by one, so a failed or interrupted batch keeps what finished."""

from __future__ import annotations

import json

import pytest

from automix.analysis._reruns import train_many
from trainer.config import fingerprint


def test_a_failing_run_does_not_lose_the_runs_that_finished(make_cfg, tmp_path):
    good = make_cfg(unique_tokens=512, epochs=1.0)
    # More unique target tokens than the tiny corpus holds: this run fails when its data is built.
    bad = make_cfg(unique_tokens=10**7, epochs=1.0)
    cache = tmp_path / "reruns"
    with pytest.raises(Exception, match="token"):
        train_many([bad, good], cache, workers=2)
    cached = json.loads((cache / f"{fingerprint(good)}.json").read_text())
    assert cached["metrics"]["target_val_loss"] > 0
    assert not (cache / f"{fingerprint(bad)}.json").exists()
    # The finished run is read back, not trained again.
    assert train_many([good], cache) == [cached["metrics"]]
