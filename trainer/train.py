"""One training run: `run(config, report=None) -> RunResult`.

The loop is nanoGPT-plain: MuAdamW, warmup-stable-decay schedule, gradient clipping, evaluation
at fixed token marks. `report(metrics)` is called at each evaluation; if it returns True or raises
`StopTraining` the run ends early (this is how a scheduler prunes). Any other exception from it
propagates unchanged (Ray Tune stops a pruned function trainable with SystemExit, for example).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainer.checkpoint import load_result, load_state, save_checkpoint, save_result, save_state
from trainer.config import TrainConfig
from trainer.data import Datasets, load_datasets
from trainer.evaluate import MCSuite, validation_loss
from trainer.model import build_model, build_optimizer

Report = Callable[[dict], bool | None]


class StopTraining(Exception):
    """Raised by a report callback to end the run early (a pruned trial)."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite, or spiked far above its best."""


@dataclass
class RunResult:
    """Final metrics, the metrics of every evaluation, and where the checkpoint went."""

    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint_path: str | None = None
    stopped_early: bool = False


def pick_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, CPU otherwise."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def decay_start_step(total_steps: int, decay_frac: float) -> int:
    """The last step at the full lr; the lr falls from the next one on."""
    return int(total_steps * (1.0 - decay_frac))


def wsd_schedule(total_steps: int, warmup_steps: int, decay_frac: float) -> Callable[[int], float]:
    """Warmup-stable-decay lr multiplier.

    The lr is flat until the last `decay_frac` of the run, so a partial run of a long trial is a
    fair early estimate of a short one: schedulers compare trials of different T at equal tokens.
    """
    decay_start = decay_start_step(total_steps, decay_frac)
    warmup_steps = min(warmup_steps, decay_start)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if step < decay_start:
            return 1.0
        return max(0.0, (total_steps - step) / max(1, total_steps - decay_start))

    return factor


def _evaluate(model, data: Datasets, batch_size: int, autocast, mc: MCSuite | None) -> dict[str, float]:
    metrics = {"target_val_loss": validation_loss(model, data.target_valid, batch_size, autocast)}
    if data.aux_valid is not None:
        metrics["aux_val_loss"] = validation_loss(model, data.aux_valid, batch_size, autocast)
    if mc is not None:
        metrics.update(mc.evaluate(model, batch_size, autocast))
    return metrics


def _mc_suite(config: TrainConfig, data: Datasets) -> MCSuite | None:
    """The configured multiple-choice sets, tokenized once per run; None when there are none."""
    d = config.data
    if not (d.eval_sets or d.aux_eval_sets):
        return None
    return MCSuite.from_paths(d.eval_sets, d.aux_eval_sets, data.tokenizer, d.seq_len, d.eval_items)


def _fresh_progress(config: TrainConfig) -> dict:
    """Counters of a run from its first step; saved in `state.pt` so a resumed run continues them."""
    return {
        "step": 0,
        "tokens": 0,
        "next_eval": config.eval_every_tokens,
        "next_checkpoint": config.checkpoint_every_tokens or 0,
        "loss_sum": 0.0,
        "batches": 0,
        "ema": None,
        "best_ema": math.inf,
        "elapsed": 0.0,
        "compute_s": 0.0,
        "history": [],
    }


def _check_divergence(progress: dict, loss_value: float, step: int, warmup: int, factor: float) -> None:
    """Stop a run whose loss is non-finite or has spiked well above its best, before it wastes its budget."""
    if not math.isfinite(loss_value):
        raise TrainingDiverged(f"training loss is {loss_value} at step {step}")
    ema = loss_value if progress["ema"] is None else 0.9 * progress["ema"] + 0.1 * loss_value
    progress["ema"] = ema
    if step >= warmup:
        if ema > factor * progress["best_ema"]:
            raise TrainingDiverged(
                f"training loss spiked to {ema:.3f}, {factor:g}× its best {progress['best_ema']:.3f}, at step {step}"
            )
        progress["best_ema"] = min(progress["best_ema"], ema)


class LossReader:
    """Reads step losses back from the device in batches of `every` and checks them for divergence.

    On CUDA a per-step `loss.item()` makes the host wait for the GPU at every step, so the next
    step's kernels cannot be queued ahead; reading every 32 steps keeps the GPU fed. The checks see
    the same values in the same order either way, only up to `every` - 1 steps later. CPU: every step.
    """

    def __init__(self, progress: dict, warmup: int, factor: float, every: int):
        self.progress, self.warmup, self.factor, self.every = progress, warmup, factor, every
        self._pending: list[tuple[int, torch.Tensor]] = []

    def add(self, step: int, loss: torch.Tensor) -> None:
        self._pending.append((step, loss.detach()))
        if len(self._pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        """Read every pending loss, add it to the running sums and check it, oldest first."""
        if not self._pending:
            return
        steps = [s for s, _ in self._pending]
        values = torch.stack([v.float() for _, v in self._pending]).tolist()
        self._pending.clear()
        for step, value in zip(steps, values, strict=True):
            _check_divergence(self.progress, value, step, self.warmup, self.factor)
            self.progress["loss_sum"] += value
            self.progress["batches"] += 1


def _finished(config: TrainConfig) -> RunResult | None:
    """The saved result of this very run (in out_dir or the run it resumes), so it is not trained twice."""
    for directory in (Path(d) for d in (config.out_dir, config.resume_from) if d):
        saved = load_result(directory, config)
        if saved is not None:
            model = directory / "model.pt"
            return RunResult(saved["metrics"], saved["history"], str(model) if model.is_file() else None)
    return None


def run(config: TrainConfig, report: Report | None = None) -> RunResult:
    """Train one model as `config` says; see the module docstring for the `report` contract.

    With `out_dir`, the training state is checkpointed every `checkpoint_every_tokens`; a run that
    finds its own state (in `out_dir`, or in `resume_from`) continues from it with the loss curve
    it would have had, and a run that finds its own finished result returns it without training.
    """
    if (done := _finished(config)) is not None:
        return done
    device = pick_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    data = load_datasets(config)
    mc = _mc_suite(config, data)
    model = build_model(config.model, data.tokenizer.vocab_size, config.data.seq_len).to(device)
    optimizer = build_optimizer(model, config.optim)
    n_steps = data.stream.n_batches
    tokens_per_step = config.optim.batch_size * config.data.seq_len
    warmup = math.ceil(config.optim.warmup_tokens / tokens_per_step)
    # LambdaLR multiplies each group's initial lr, keeping MuAdamW's per-group width scaling.
    lr_factor = wsd_schedule(n_steps, warmup, config.optim.decay_frac)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext
    out_dir = Path(config.out_dir) if config.out_dir else None
    progress = _fresh_progress(config)
    for directory in (Path(d) for d in (config.out_dir, config.resume_from) if d):
        if (loaded := load_state(directory, config, model, optimizer, scheduler)) is not None:
            progress = loaded
            break

    stopped = False
    losses = LossReader(progress, warmup, config.divergence_factor, every=1 if device.type == "cpu" else 32)
    start = time.perf_counter() - progress["elapsed"]
    model.train()
    while progress["step"] < n_steps:
        step_start = time.perf_counter()
        step = progress["step"]
        x, y = (t.to(device, non_blocking=True) for t in data.stream.batch(step))
        with autocast():
            _, loss = model(x, y)
        losses.add(step, loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        progress["step"] = step + 1
        progress["tokens"] += x.numel()
        tokens = progress["tokens"]
        if tokens < progress["next_eval"] and step < n_steps - 1:
            progress["compute_s"] = progress.get("compute_s", 0.0) + time.perf_counter() - step_start
            continue
        losses.flush()  # evaluations and checkpoints see every step's loss
        progress["next_eval"] = (tokens // config.eval_every_tokens + 1) * config.eval_every_tokens
        model.eval()
        metrics = {
            "tokens": tokens,
            "step": step + 1,
            "progress": (step + 1) / n_steps,  # 1.0: trained to the end, even if a scheduler stops it here
            "epoch": tokens * (1.0 - config.budget.mix_ratio) / config.budget.unique_tokens,
            "lr": config.optim.learning_rate * lr_factor(step),
            # Past the stable phase the loss falls with the lr, not with progress: schedulers must
            # not rank this report against other trials' stable-phase ones (automix/schedulers.py).
            "decaying": step > decay_start_step(n_steps, config.optim.decay_frac),
            "train_loss": progress["loss_sum"] / progress["batches"],
            # Multiple choice costs several validation passes: every evaluation only if asked.
            **_evaluate(
                model,
                data,
                config.optim.batch_size * 4,
                autocast,
                mc if config.data.mc_every_eval or step == n_steps - 1 else None,
            ),
            "wall_time_s": time.perf_counter() - start,
        }
        metrics["tokens_per_s"] = tokens / metrics["wall_time_s"]
        # Time in steps and evaluations alone: wall_time_s minus it is what reporting and checkpoints cost.
        progress["compute_s"] = progress.get("compute_s", 0.0) + time.perf_counter() - step_start
        metrics["compute_time_s"] = progress["compute_s"]
        model.train()
        progress["loss_sum"], progress["batches"] = 0.0, 0
        progress["history"].append(metrics)
        if report is not None:
            try:
                stopped = bool(report(metrics))
            except StopTraining:
                stopped = True
            if stopped:
                break
        if out_dir and config.checkpoint_every_tokens and tokens >= progress["next_checkpoint"] and step < n_steps - 1:
            progress["next_checkpoint"] = tokens + config.checkpoint_every_tokens
            progress["elapsed"] = time.perf_counter() - start
            save_state(out_dir, config, model, optimizer, scheduler, progress)

    history = progress["history"]
    final = dict(history[-1])
    if mc is not None and stopped and not config.data.mc_every_eval:
        model.eval()  # a run stopped early is still scored on its final model
        final.update(mc.evaluate(model, config.optim.batch_size * 4, autocast))
    checkpoint = None
    if out_dir:
        checkpoint = str(save_checkpoint(out_dir, model, config, data.tokenizer))
        if not stopped:
            save_result(out_dir, config, final, history)
    return RunResult(metrics=final, history=history, checkpoint_path=checkpoint, stopped_early=stopped)
