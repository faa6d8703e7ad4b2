"""How many trials share a GPU (automix/resources/_packing.py): synthetic sizes, no GPU needed."""

from __future__ import annotations

import stat

import pytest
import torch

from automix.resources import _packing
from automix.resources._packing import (
    gpu_fraction,
    gpu_share_line,
    pack,
    resolve_gpus_per_trial,
    trial_bytes,
    trial_size,
)
from trainer.config import TrainConfig
from trainer.model import build_model

GB = 10**9


def config(width=64, depth=2, heads=4, seq=128, batch=16, device="auto", **data) -> TrainConfig:
    """The example proxy's shape by default (examples/ar_en_cpu.yaml); corpora are never read."""
    return TrainConfig.model_validate(
        {
            "data": {"target": "t", "target_valid": "v", "seq_len": seq, **data},
            "model": {"width": width, "base_width": 64, "depth": depth, "n_heads": heads},
            "optim": {"batch_size": batch},
            "budget": {"unique_tokens": 100_000},
            "device": device,
        }
    )


PROXY = config()
GPT_150M = config(width=1024, depth=12, heads=16, seq=1024, batch=32)
W256 = config(width=256, depth=4, seq=512, batch=32)


@pytest.mark.parametrize("cfg", [PROXY, GPT_150M, config(tokenizer="bpe", vocab_size=4096)])
def test_trial_size_counts_the_models_parameters(cfg):
    with torch.device("meta"):
        model = build_model(cfg.model, 257 if cfg.data.tokenizer == "byte" else 4096, cfg.data.seq_len, init=False)
    assert trial_size(cfg).params == sum(p.numel() for p in model.parameters())


def test_150m_needs_about_18_gb_and_the_proxy_well_under_one():
    assert 14 * GB < trial_bytes(trial_size(GPT_150M)) < 24 * GB
    assert trial_bytes(trial_size(PROXY)) < 0.7 * GB  # the CUDA context dominates


@pytest.mark.parametrize("free_gb", [80, 141])
def test_example_proxy_fills_a_big_gpu_up_to_the_cap(free_gb):
    packing = pack(trial_size(PROXY), free_gb * GB, cpu_cores=64)
    assert packing.k == 16 and packing.limited_by == "cap"
    assert packing.gpus_per_trial == 0.0625


@pytest.mark.parametrize("free_gb", [80, 141])
def test_150m_model_gets_one_or_two_per_gpu(free_gb):
    packing = pack(trial_size(GPT_150M), free_gb * GB, cpu_cores=64)
    assert packing.k in (1, 2)
    assert packing.limits["memory"] >= 3  # memory alone would allow more: compute is what limits it


def test_w256_d4_matches_the_measured_best_packing():
    assert pack(trial_size(W256), 141 * GB, cpu_cores=64).k == 8  # H200: 8 gave 7.18M tokens/s, 4 gave 4.69M


def test_cpu_cores_cap_k():
    assert pack(trial_size(PROXY), 141 * GB, cpu_cores=6).k == 6
    packing = pack(trial_size(PROXY), 141 * GB, cpu_cores=16, cpus_per_trial=2)
    assert packing.k == 8 and packing.limited_by == "cpu cores"


def test_memory_caps_k_and_one_trial_always_runs():
    small_gpu = pack(trial_size(PROXY), 2 * GB, cpu_cores=64)
    assert small_gpu.limited_by == "memory" and 1 < small_gpu.k < 16
    assert pack(trial_size(GPT_150M), 4 * GB, cpu_cores=64).k == 1


@pytest.mark.parametrize("k", range(1, 17))
def test_k_fractions_fit_in_one_gpu(k):
    assert k * gpu_fraction(k) <= 1 and (k + 1) * gpu_fraction(k) > 1


def test_resolve_keeps_numbers_and_packs_auto():
    assert resolve_gpus_per_trial(0.25, PROXY) == (0.25, 4)
    assert resolve_gpus_per_trial(0, PROXY) == (0.0, 0)
    assert resolve_gpus_per_trial(1, PROXY) == (1.0, 1)
    assert resolve_gpus_per_trial("auto", PROXY, free_bytes=80 * GB, cpu_cores=32) == (0.0625, 16)
    assert resolve_gpus_per_trial("auto", PROXY, free_bytes=80 * GB, cpu_cores=4) == (0.25, 4)
    assert resolve_gpus_per_trial("auto", None, free_bytes=80 * GB) == (1.0, 1)  # a custom objective: a whole GPU


def test_resolve_auto_is_zero_without_a_gpu(monkeypatch):
    monkeypatch.setattr(_packing, "visible_gpu_free_bytes", lambda: None)
    assert resolve_gpus_per_trial("auto", PROXY) == (0.0, 0)
    assert resolve_gpus_per_trial("auto", None) == (0.0, 0)
    assert resolve_gpus_per_trial("auto", config(device="cpu"), free_bytes=80 * GB) == (0.0, 0)


def test_resolve_auto_takes_a_whole_gpu_on_a_cluster_whose_gpus_this_machine_cannot_see():
    """A driver without a GPU that joined a Ray cluster with GPUs ran every trial on the CPU before."""
    assert resolve_gpus_per_trial("auto", PROXY, free_bytes=None, cluster_gpus=4) == (1.0, 1)
    assert resolve_gpus_per_trial("auto", None, free_bytes=None, cluster_gpus=1) == (1.0, 1)
    assert resolve_gpus_per_trial("auto", PROXY, free_bytes=None, cluster_gpus=0) == (0.0, 0)
    assert resolve_gpus_per_trial("auto", config(device="cpu"), free_bytes=None, cluster_gpus=4) == (0.0, 0)
    # a visible GPU is packed by its memory, whatever the cluster has
    assert resolve_gpus_per_trial("auto", PROXY, free_bytes=80 * GB, cpu_cores=4, cluster_gpus=8) == (0.25, 4)
    assert gpu_share_line(1.0, 1, cluster_gpus=4).startswith("none on this machine, 4 in the Ray cluster")
    assert gpu_share_line(0.25, 4) == "4 trial(s) share each GPU (gpus_per_trial=0.25)"
    assert gpu_share_line(0.0, 0) == "none visible, trials run on the CPU"


def test_free_memory_read_from_nvidia_smi_for_the_visible_gpus(monkeypatch, tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, 81000'\necho '1, 1000'\necho '2, 50000'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    assert _packing.visible_gpu_free_bytes() == 50000 * 2**20  # the emptiest of the visible ones
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert _packing.visible_gpu_free_bytes() == 1000 * 2**20
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert _packing.visible_gpu_free_bytes() is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_free_memory_is_read_and_packs_the_proxy():
    free = _packing.visible_gpu_free_bytes()
    assert 0 < free <= torch.cuda.get_device_properties(0).total_memory
    assert resolve_gpus_per_trial("auto", PROXY)[1] >= 1
