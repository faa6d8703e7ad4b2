"""torch.compile of the μP model (TrainConfig.compile, trainer/train.py's TrainStep).

Compiled tests run on CPU at one tiny shape (w32 over base 16, d1, batch 4 x 16, byte vocabulary),
so that after the first compilation (tens of seconds) the others hit inductor's cache.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext

import numpy as np
import pytest
import torch

from trainer import train
from trainer.checkpoint import load_checkpoint
from trainer.config import ModelConfig, OptimConfig
from trainer.data import load_datasets
from trainer.evaluate import validation_loss
from trainer.model import build_model, build_optimizer
from trainer.train import TrainStep, compile_wanted, run

SHAPE = {"width": 32, "base_width": 16, "depth": 1, "n_heads": 4}


@pytest.fixture
def tiny_run(make_cfg):
    def build(**kw):
        cfg = make_cfg(unique_tokens=2000, epochs=2, mix_ratio=0.25)
        return cfg.model_copy(
            update={"model": ModelConfig(**SHAPE), "eval_every_tokens": 1000, "threads": 1, "device": "cpu", **kw}
        )

    return build


def curve(result) -> np.ndarray:
    return np.array([(h["train_loss"], h["target_val_loss"], h["aux_val_loss"]) for h in result.history])


def test_auto_compiles_on_cuda_only():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not compile_wanted("auto", cpu) and compile_wanted("auto", cuda)
    assert compile_wanted("on", cpu) and not compile_wanted("off", cuda)


class _Broken(torch.nn.Module):
    """Stands in for a compiled module whose compilation fails at its first call."""

    def forward(self, *args):
        raise RuntimeError("backend compiler failed\nsecond line of a long traceback")


@pytest.mark.parametrize("where", ["first call", "torch.compile"])
def test_failed_compile_warns_once_and_trains_eagerly(tiny_run, monkeypatch, caplog, where):
    def fake_compile(model):
        if where == "torch.compile":
            raise RuntimeError("Dynamo is not supported on this Python")
        return _Broken()

    eager = run(tiny_run(compile="off"))
    monkeypatch.setattr(train.torch, "compile", fake_compile)
    with caplog.at_level(logging.WARNING, logger="trainer.train"):
        fallen_back = run(tiny_run(compile="on"))
    warnings = [r for r in caplog.records if "torch.compile unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    np.testing.assert_array_equal(curve(fallen_back), curve(eager))  # the same steps, bit for bit


@pytest.mark.slow
def test_compiled_step_keeps_mup_shapes_optimizer_scaling_and_eager_numerics():
    x = torch.randint(0, 257, (4, 16), generator=torch.Generator().manual_seed(1))
    trained = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        model = build_model(ModelConfig(**SHAPE), 257, 16)
        optimizer = build_optimizer(model, OptimConfig(learning_rate=1e-2, weight_decay=0.1))
        step = TrainStep(model, nullcontext, compile=compiled)
        losses = []
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            losses.append(step(x, x).item())
            optimizer.step()
        trained[compiled] = (model, optimizer, step, losses)
    model, optimizer, step, losses = trained[True]
    assert step.compiled is not None  # it compiled, it did not fall back
    assert all(hasattr(p, "infshape") for p in model.parameters())
    assert model.blocks[0].fc.weight.infshape.width_mult() == pytest.approx(2)
    # The optimiser holds the very parameters the compiled module trains, with MuAdamW's per-group lr.
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert {id(p) for p in step.compiled.parameters()} == in_optimizer == {id(p) for p in model.parameters()}
    hidden = next(g for g in optimizer.param_groups if any(p is model.blocks[0].fc.weight for p in g["params"]))
    assert hidden["lr"] == pytest.approx(1e-2 / 2) and hidden["weight_decay"] == pytest.approx(0.1 * 2)
    eager_model, _, _, eager_losses = trained[False]
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5)
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compiled_run_matches_eager_and_its_checkpoints_load_uncompiled(tiny_run, tmp_path, caplog):
    eager = run(tiny_run(compile="off"))
    with caplog.at_level(logging.WARNING, logger="trainer.train"):
        compiled = run(tiny_run(compile="on", out_dir=str(tmp_path / "c")))
    assert not caplog.records  # it compiled: no fallback to eager
    np.testing.assert_allclose(curve(compiled), curve(eager), rtol=1e-4)
    saved = torch.load(tmp_path / "c" / "model.pt", weights_only=True)["model"]
    assert not any(key.startswith("_orig_mod.") for key in saved)
    model, cfg = load_checkpoint(compiled.checkpoint_path)  # strict load into a plain, uncompiled model
    assert hasattr(model.blocks[0].fc.weight, "infshape")
    model.eval()
    loss = validation_loss(model, load_datasets(cfg).target_valid, 64, nullcontext)
    assert loss == pytest.approx(compiled.metrics["target_val_loss"], abs=1e-6)


class _Crash(Exception):
    pass


@pytest.mark.slow
def test_state_saved_by_a_compiled_run_resumes_eagerly(tiny_run, tmp_path):
    full = run(tiny_run(compile="off"))

    seen = []

    def crash_at_second(metrics):
        seen.append(metrics)
        if len(seen) == 2:
            raise _Crash

    with pytest.raises(_Crash):
        run(tiny_run(compile="on", out_dir=str(tmp_path / "r"), checkpoint_every_tokens=1000), report=crash_at_second)
    state = torch.load(tmp_path / "r" / "state.pt", weights_only=True)
    assert not any(key.startswith("_orig_mod.") for key in state["model"])
    resumed = run(tiny_run(compile="off", out_dir=str(tmp_path / "r"), checkpoint_every_tokens=1000))
    assert resumed.history[0]["tokens"] == full.history[0]["tokens"]  # the compiled run's evaluations kept
    np.testing.assert_allclose(curve(resumed), curve(full), rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_auto_compiles_and_tracks_eager_in_bf16(tiny_run, caplog):
    eager = run(tiny_run(device="cuda", compile="off"))
    with caplog.at_level(logging.WARNING, logger="trainer.train"):
        compiled = run(tiny_run(device="cuda", compile="auto"))  # auto: compiled on CUDA
    assert not caplog.records
    np.testing.assert_allclose(curve(compiled), curve(eager), rtol=2e-2)  # bf16 autocast on both
