"""The training loop: determinism, early stop, schedule, checkpoint reload."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainer.checkpoint import load_checkpoint
from trainer.config import fingerprint
from trainer.data import load_datasets
from trainer.train import LoopState, LossReader, StopTraining, TrainingDiverged, run, wsd_schedule


@pytest.fixture
def small(make_cfg):
    def build(**kw):
        cfg = make_cfg(unique_tokens=2000, epochs=4, mix_ratio=0.25, seed=kw.pop("seed", 0))
        return cfg.model_copy(
            update={
                "model": cfg.model.model_copy(update={"width": 32, "base_width": 32, "depth": 1}),
                "eval_every_tokens": 1000,
                "threads": 1,
                **kw,
            }
        )

    return build


def test_same_seed_same_losses_other_seed_differs(small):
    a, b, c = run(small()), run(small()), run(small(seed=1))
    losses = [[h["target_val_loss"] for h in r.history] for r in (a, b, c)]
    assert losses[0] == losses[1]  # bitwise on CPU
    assert losses[0] != losses[2]
    assert a.metrics["target_val_loss"] < math.log(257)  # it learned something


def test_report_gets_metrics_and_can_stop_the_run(small):
    seen = []

    def report(metrics):
        seen.append(metrics)
        return len(seen) == 2

    full = run(small())
    result = run(small(), report=report)
    assert result.stopped_early and len(result.history) == 2 < len(full.history)
    for key in ("tokens", "step", "target_val_loss", "aux_val_loss", "lr"):
        assert key in seen[0]
    assert seen[1]["tokens"] > seen[0]["tokens"]

    def raising(metrics):
        raise StopTraining

    assert run(small(), report=raising).history[-1]["tokens"] == seen[0]["tokens"]


def test_evaluations_land_on_fixed_token_marks(small):
    result = run(small())
    marks = [h["tokens"] for h in result.history]
    tokens_per_step = 4 * 16
    assert all(b - a <= 1000 + tokens_per_step for a, b in zip(marks, marks[1:], strict=False))
    assert marks[-1] == load_datasets(small()).stream.n_tokens  # final evaluation at the end


def test_reports_say_when_the_lr_decays(small):
    history = run(small()).history
    flags = [h["decaying"] for h in history]
    assert flags[0] is False and flags[-1] is True and flags == sorted(flags)  # stable, then decaying to the end
    stable = [h["lr"] for h in history if not h["decaying"]]
    decaying = [h["lr"] for h in history if h["decaying"]]
    assert stable[-1] > decaying[0] and decaying == sorted(decaying, reverse=True)


def test_wsd_schedule_warms_up_holds_and_decays_to_zero():
    f = wsd_schedule(total_steps=100, warmup_steps=10, decay_frac=0.2)
    assert f(0) == pytest.approx(0.1) and f(9) == 1.0
    assert f(10) == f(50) == f(79) == 1.0
    assert f(90) == pytest.approx(0.5) and f(99) == pytest.approx(0.05)


def test_checkpoint_reload_reproduces_the_final_loss(small, tmp_path):
    from contextlib import nullcontext

    from trainer.evaluate import validation_loss

    result = run(small(out_dir=str(tmp_path / "ckpt")))
    model, cfg = load_checkpoint(result.checkpoint_path)
    model.eval()
    assert hasattr(model.blocks[0].fc.weight, "infshape")  # μP shapes back, params not rescaled
    loss = validation_loss(model, load_datasets(cfg).target_valid, 64, nullcontext)
    assert loss == pytest.approx(result.metrics["target_val_loss"], abs=1e-6)


class Crash(Exception):
    """Stands in for a killed process: raised from the report callback mid-run."""


def _crash_at(n):
    calls = []

    def report(metrics):
        calls.append(metrics)
        if len(calls) == n:
            raise Crash

    return report


def test_resumed_run_has_the_uninterrupted_loss_curve(small, tmp_path):
    full = run(small(out_dir=str(tmp_path / "a"), checkpoint_every_tokens=1000))
    cfg = small(out_dir=str(tmp_path / "b"), checkpoint_every_tokens=1000)
    with pytest.raises(Crash):
        run(cfg, report=_crash_at(3))
    assert (tmp_path / "b" / "state.pt").is_file() and not (tmp_path / "b" / "result.json").exists()
    saved = torch.load(tmp_path / "b" / "state.pt", weights_only=True)["progress"]
    # a plain dict of the loop state, saved before the report the run crashed in
    assert LoopState(**saved).step > 0 and len(saved["history"]) == 3
    resumed = run(cfg)

    def curve(result):
        return np.array([(h["tokens"], h["target_val_loss"], h["train_loss"]) for h in result.history])

    np.testing.assert_allclose(curve(resumed), curve(full), rtol=1e-6)
    assert not (tmp_path / "b" / "state.pt").exists()  # a finished run keeps its result, not its state


def test_requeued_run_continues_from_the_interrupted_one(small, tmp_path):
    full = run(small())
    with pytest.raises(Crash):
        run(small(out_dir=str(tmp_path / "0003"), checkpoint_every_tokens=1000), report=_crash_at(2))
    seen = []
    requeued = run(small(out_dir=str(tmp_path / "0007"), resume_from=str(tmp_path / "0003")), report=seen.append)
    assert seen[0]["tokens"] > full.history[0]["tokens"]  # it did not start from scratch
    assert requeued.metrics["target_val_loss"] == pytest.approx(full.metrics["target_val_loss"])


def test_run_stopped_at_a_report_is_continued_from_that_report(small, tmp_path):
    """Freeze-thaw: a scheduler stops a run at a report; a later run of the same config trains only the rest."""
    full = run(small())
    stopped = run(
        small(out_dir=str(tmp_path / "0002"), checkpoint_every_tokens=2000), report=lambda m: m["tokens"] >= 2000
    )
    at = stopped.history[-1]["tokens"]
    assert stopped.stopped_early and (tmp_path / "0002" / "state.pt").is_file()
    seen = []
    thawed = run(small(out_dir=str(tmp_path / "0005"), resume_from=str(tmp_path / "0002")), report=seen.append)
    assert seen[0]["tokens"] > at and all(m["trained_tokens"] == m["tokens"] - at for m in seen)
    assert thawed.metrics["target_val_loss"] == pytest.approx(full.metrics["target_val_loss"])
    assert full.metrics["trained_tokens"] == full.metrics["tokens"]  # a fresh run trains all its tokens


def test_finished_run_is_not_trained_twice(small, tmp_path):
    first = run(small(out_dir=str(tmp_path / "r")))
    seen = []
    again = run(small(out_dir=str(tmp_path / "s"), resume_from=str(tmp_path / "r")), report=seen.append)
    assert seen == [] and again.metrics == first.metrics and again.history == first.history
    other_seed = run(small(out_dir=str(tmp_path / "r"), seed=5), report=seen.append)
    assert seen and other_seed.metrics != first.metrics  # another run's result is never reused


def test_divergence_stops_the_run_early(small):
    cfg = small()
    cfg = cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"learning_rate": 30.0, "grad_clip": 0.0})})
    with pytest.raises(TrainingDiverged) as err:
        run(cfg)
    assert "spiked" in str(err.value) or "inf" in str(err.value) or "nan" in str(err.value)


def test_losses_read_in_batches_are_checked_like_losses_read_every_step():
    values = [2.0, 1.9, 1.8, 1.7, 30.0, 1.6]  # spikes at step 4

    def feed(every: int) -> tuple[LoopState, str | None]:
        state = LoopState()
        reader = LossReader(state, warmup=2, factor=1.5, every=every)
        try:
            for step, value in enumerate(values):
                reader.add(step, torch.tensor(value))
            reader.flush()
        except TrainingDiverged as e:
            return state, str(e)
        return state, None

    every_step, batched = feed(1), feed(4)  # CPU reads every step; CUDA in batches
    assert batched == every_step
    assert every_step[1] is not None and "at step 4" in every_step[1] and every_step[0].batches == 4


def test_fingerprint_ignores_where_and_how_a_run_is_done(small, tmp_path):
    cfg = small()
    elsewhere = small(
        out_dir=str(tmp_path), resume_from=str(tmp_path), threads=2, device="cpu", compile="on", precision="fp32"
    )
    assert fingerprint(elsewhere.model_copy(update={"checkpoint_every_tokens": 7})) == fingerprint(cfg)
    assert fingerprint(small(seed=1)) != fingerprint(cfg)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_tracks_the_cpu_run(small):
    cpu = run(small(device="cpu")).metrics["target_val_loss"]
    bf16 = run(small(device="cuda", compile="off")).metrics["target_val_loss"]
    fp32 = run(small(device="cuda", compile="off", precision="fp32")).metrics["target_val_loss"]
    assert fp32 == pytest.approx(cpu, rel=1e-3)  # the same arithmetic, other kernels
    assert bf16 == pytest.approx(cpu, rel=2e-2)  # bf16 autocast rounds every matmul
