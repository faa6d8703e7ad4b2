"""examples/gpu_1x.yaml as a new user runs it: it validates, packs as its comments say, and its corpora
feed its largest trial. What a GPU does with it is not checked here (no GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from automix.config import load_config
from automix.driver._preflight import trainer_plan
from automix.resources._packing import pack, resolve_gpus_per_trial, trial_bytes, trial_size
from automix.study import Workspace
from trainer.data import prepare

EXAMPLE = Path(__file__).parents[2] / "examples" / "gpu_1x.yaml"
GB = 10**9


@pytest.fixture
def largest_trial(shared_data, monkeypatch):
    """The example's largest trial (the preflight's data check), read from the repository root."""
    monkeypatch.chdir(EXAMPLE.parents[1])  # the example's paths are relative to it
    config = load_config(EXAMPLE)
    return trainer_plan(config, config.search, Workspace.from_config(config)).data_check


def test_the_example_packs_8_trials_on_one_gpu_limited_by_compute(largest_trial):
    size = trial_size(largest_trial)
    packing = pack(size, 80 * GB, cpu_cores=16)
    assert (packing.k, packing.limited_by) == (8, "compute")
    assert resolve_gpus_per_trial("auto", largest_trial, 1.0, free_bytes=80 * GB, cpu_cores=16) == (0.125, 8)
    assert 1.2 * GB < trial_bytes(size) < 1.3 * GB  # the comment's ~1.25 GB per trial
    assert pack(size, 11 * GB, cpu_cores=16).k == 7  # below ~11 GB free, memory limits it
    assert pack(size, 80 * GB, cpu_cores=4).k == 4  # and fewer cores, fewer trials


def test_without_a_gpu_the_trials_fall_back_to_the_cpu(largest_trial, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible, as on this machine
    assert resolve_gpus_per_trial("auto", largest_trial) == (0.0, 0)


def test_the_shared_corpora_feed_the_largest_trial(largest_trial):
    summary = prepare(largest_trial)  # raises CorpusError when a corpus is too small
    assert summary.train_tokens == 32_000_000 and summary.n_aux > 0
