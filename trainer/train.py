"""One training run: `run(config, report=None) -> RunResult`.

The loop is nanoGPT-plain: MuAdamW, warmup-stable-decay schedule, gradient clipping, evaluation
at fixed token marks. `report(metrics)` is called at each evaluation; if it returns True or raises
`StopTraining` the run ends early (this is how a scheduler prunes). Any other exception from it
propagates unchanged (Ray Tune stops a pruned function trainable with SystemExit, for example).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from trainer.budget import epochs_in
from trainer.checkpoint import load_result, load_state, save_checkpoint, save_result, save_state
from trainer.config import TrainConfig
from trainer.data import Datasets, load_datasets
from trainer.evaluate import MCSuite, validation_loss
from trainer.model import Transformer, build_model, build_optimizer

Report = Callable[[dict], bool | None]
Autocast = Callable[[], AbstractContextManager]

logger = logging.getLogger(__name__)


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


@dataclass
class LoopState:
    """The training loop's counters; saved in `state.pt` (as a plain dict) so a resumed run continues them."""

    step: int = 0  # steps taken
    tokens: int = 0  # tokens trained on
    start_tokens: int = 0  # where this process started: the tokens of the state it resumed, or 0
    next_eval: int = 0  # token mark of the next evaluation
    next_checkpoint: int = 0  # token mark of the next `state.pt`
    loss_sum: float = 0.0  # train losses since the last evaluation...
    batches: int = 0  # ...and how many: their mean is the reported train_loss
    ema: float | None = None  # smoothed train loss and its best, for the divergence check
    best_ema: float = math.inf
    elapsed: float = 0.0  # wall time up to the last `state.pt`
    compute_s: float = 0.0  # time in steps and evaluations alone
    history: list[dict[str, float]] = field(default_factory=list)  # every evaluation's metrics


def _check_divergence(state: LoopState, loss_value: float, step: int, warmup: int, factor: float) -> None:
    """Stop a run whose loss is non-finite or has spiked well above its best, before it wastes its budget."""
    if not math.isfinite(loss_value):
        raise TrainingDiverged(f"training loss is {loss_value} at step {step}")
    ema = loss_value if state.ema is None else 0.9 * state.ema + 0.1 * loss_value
    state.ema = ema
    if step >= warmup:
        if ema > factor * state.best_ema:
            raise TrainingDiverged(
                f"training loss spiked to {ema:.3f}, {factor:g}× its best {state.best_ema:.3f}, at step {step}"
            )
        state.best_ema = min(state.best_ema, ema)


class LossReader:
    """Reads step losses back from the device in batches of `every` and checks them for divergence.

    On CUDA a per-step `loss.item()` makes the host wait for the GPU at every step, so the next
    step's kernels cannot be queued ahead; reading every 32 steps keeps the GPU fed. The checks see
    the same values in the same order either way, only up to `every` - 1 steps later. CPU: every step.
    """

    def __init__(self, state: LoopState, warmup: int, factor: float, every: int):
        self.state, self.warmup, self.factor, self.every = state, warmup, factor, every
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
            _check_divergence(self.state, value, step, self.warmup, self.factor)
            self.state.loss_sum += value
            self.state.batches += 1


def compile_wanted(setting: str, device: torch.device) -> bool:
    """Whether `TrainConfig.compile` asks for torch.compile on `device`.

    `auto` compiles on CUDA only: on CPU the example proxy trained no faster compiled, and the
    compilation cost more than it could save (BENCHMARKS.md "torch.compile on CPU").
    """
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def autocast_for(device: torch.device, precision: str = "auto") -> Autocast:
    """bf16 autocast on CUDA unless `precision` is fp32; CPU runs in fp32."""
    if device.type == "cuda" and precision == "auto":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext


class TrainStep:
    """Forward and backward of one training batch: through `torch.compile` when asked, eagerly otherwise.

    The compiled module wraps the model's own parameters, so the optimiser (built on them), μP's
    `infshape` on each and the checkpoints' state_dict keys are those of the eager model. Only
    batches of the first batch's shape go through it: a short last batch, and evaluation (which
    calls the model itself), run eagerly, as a recompile would cost more than they do. If
    compiling fails at the first step (no compiler, an unsupported platform or operator), one
    warning is logged and the run continues eagerly from that same step.
    """

    def __init__(self, model: torch.nn.Module, autocast: Autocast, compile: bool):
        self.model, self.autocast = model, autocast
        self.compiled: torch.nn.Module | None = None
        self._shape: torch.Size | None = None
        if compile:
            try:
                self.compiled = torch.compile(model)  # lazy: traces and compiles at the first call
            except Exception as e:  # any reason compile is unavailable means eager
                _compile_failed(e)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch's loss, with gradients accumulated into the model's parameters."""
        if self.compiled is not None and self._shape is None:
            self._shape = x.shape
            try:
                return self._forward_backward(self.compiled, x, y)
            except Exception as e:  # compile errors surface at the first call
                _compile_failed(e)
                self.compiled = None
                self.model.zero_grad(set_to_none=True)
        module = self.compiled if self.compiled is not None and x.shape == self._shape else self.model
        return self._forward_backward(module, x, y)

    def _forward_backward(self, module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            _, loss = module(x, y)
        loss.backward()
        return loss


def _compile_failed(error: Exception) -> None:
    first_line = (str(error).strip().splitlines() or [""])[0][:200]
    logger.warning("torch.compile unavailable (%s: %s); training eagerly", type(error).__name__, first_line)


@dataclass
class _Setup:
    """What one run trains and evaluates with, built from its config."""

    device: torch.device
    data: Datasets
    mc: MCSuite | None  # multiple-choice sets, None when none are configured
    model: Transformer
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    lr_factor: Callable[[int], float]  # the schedule: lr multiplier at a step
    n_steps: int
    warmup: int  # warmup steps; the divergence check starts after them
    autocast: Autocast
    train_step: TrainStep  # forward and backward of one batch, compiled or eager
    eval_batch_size: int


def _mc_suite(config: TrainConfig, data: Datasets) -> MCSuite | None:
    """The configured multiple-choice sets, tokenized once per run; None when there are none."""
    d = config.data
    if not (d.eval_sets or d.aux_eval_sets):
        return None
    return MCSuite.from_paths(d.eval_sets, d.aux_eval_sets, data.tokenizer, d.seq_len, d.eval_items)


def _setup(config: TrainConfig) -> _Setup:
    """Seed torch, then load the data and build the model, MuAdamW and the warmup-stable-decay schedule."""
    device = pick_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    data = load_datasets(config)
    mc = _mc_suite(config, data)
    model = build_model(config.model, data.tokenizer.vocab_size, config.data.seq_len).to(device)
    optimizer = build_optimizer(model, config.optim)
    n_steps = data.stream.n_batches
    warmup = math.ceil(config.optim.warmup_tokens / (config.optim.batch_size * config.data.seq_len))
    lr_factor = wsd_schedule(n_steps, warmup, config.optim.decay_frac)
    # LambdaLR multiplies each group's initial lr, keeping MuAdamW's per-group width scaling.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    autocast = autocast_for(device, config.precision)
    return _Setup(
        device=device,
        data=data,
        mc=mc,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        lr_factor=lr_factor,
        n_steps=n_steps,
        warmup=warmup,
        autocast=autocast,
        train_step=TrainStep(model, autocast, compile_wanted(config.compile, device)),
        eval_batch_size=config.optim.batch_size * 4,
    )


def _run_dirs(config: TrainConfig) -> list[Path]:
    """Where this run's own earlier work may be: its out_dir, then the run it resumes."""
    return [Path(d) for d in (config.out_dir, config.resume_from) if d]


def _finished(config: TrainConfig) -> RunResult | None:
    """The saved result of this very run (in out_dir or the run it resumes), so it is not trained twice."""
    for directory in _run_dirs(config):
        saved = load_result(directory, config)
        if saved is not None:
            model = directory / "model.pt"
            return RunResult(saved["metrics"], saved["history"], str(model) if model.is_file() else None)
    return None


def _start_state(config: TrainConfig, setup: _Setup) -> LoopState:
    """The state this run was interrupted in (restoring model, optimiser, schedule and RNG), or a fresh one."""
    for directory in _run_dirs(config):
        if (saved := load_state(directory, config, setup.model, setup.optimizer, setup.scheduler)) is not None:
            return LoopState(**{**saved, "start_tokens": saved["tokens"]})
    return LoopState(next_eval=config.eval_every_tokens, next_checkpoint=config.checkpoint_every_tokens or 0)


def _evaluation_metrics(config: TrainConfig, setup: _Setup, state: LoopState, start: float) -> dict[str, float]:
    """What an evaluation after `state.step` steps reports: position, schedule, losses, accuracies, times.

    `start` is the run's start on the `time.perf_counter` clock. `compute_time_s` is added by the
    caller, once the evaluation's own time is counted.
    """
    model, batch_size, autocast = setup.model, setup.eval_batch_size, setup.autocast
    step = state.step - 1  # the step just taken
    model.eval()
    metrics = {
        "tokens": state.tokens,
        "trained_tokens": state.tokens - state.start_tokens,  # what this process trained: its cost
        "step": state.step,
        "progress": state.step / setup.n_steps,  # 1.0: trained to the end, even if a scheduler stops it here
        "epoch": epochs_in(state.tokens, config.budget.unique_tokens, config.budget.mix_ratio),
        "lr": config.optim.learning_rate * setup.lr_factor(step),
        # Past the stable phase the loss falls with the lr, not with progress: schedulers must not
        # rank this report against other trials' stable-phase ones (automix/scheduling/_schedulers.py).
        "decaying": step > decay_start_step(setup.n_steps, config.optim.decay_frac),
        "train_loss": state.loss_sum / state.batches,
        "target_val_loss": validation_loss(model, setup.data.target_valid, batch_size, autocast),
    }
    if setup.data.aux_valid is not None:
        metrics["aux_val_loss"] = validation_loss(model, setup.data.aux_valid, batch_size, autocast)
    # Multiple choice costs several validation passes: every evaluation only if asked.
    if setup.mc is not None and (config.data.mc_every_eval or state.step == setup.n_steps):
        metrics.update(setup.mc.evaluate(model, batch_size, autocast))
    model.train()
    metrics["wall_time_s"] = time.perf_counter() - start
    metrics["tokens_per_s"] = state.tokens / metrics["wall_time_s"]
    return metrics


def _stop_requested(report: Report | None, metrics: dict[str, float]) -> bool:
    """The `report` contract: True or `StopTraining` ends the run; any other exception propagates."""
    if report is None:
        return False
    try:
        return bool(report(metrics))
    except StopTraining:
        return True


def run(config: TrainConfig, report: Report | None = None) -> RunResult:
    """Train one model as `config` says; see the module docstring for the `report` contract.

    With `out_dir`, the training state is checkpointed every `checkpoint_every_tokens`; a run that
    finds its own state (in `out_dir`, or in `resume_from`) continues from it with the loss curve
    it would have had, and a run that finds its own finished result returns it without training.
    """
    if (done := _finished(config)) is not None:
        return done
    setup = _setup(config)
    model, optimizer, scheduler = setup.model, setup.optimizer, setup.scheduler
    state = _start_state(config, setup)
    losses = LossReader(state, setup.warmup, config.divergence_factor, every=1 if setup.device.type == "cpu" else 32)
    out_dir = Path(config.out_dir) if config.out_dir else None
    start = time.perf_counter() - state.elapsed
    stopped = False
    model.train()
    while state.step < setup.n_steps:
        step_start = time.perf_counter()
        x, y = (t.to(setup.device, non_blocking=True) for t in setup.data.stream.batch(state.step))
        optimizer.zero_grad(set_to_none=True)
        loss = setup.train_step(x, y)
        losses.add(state.step, loss)
        if config.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        state.step += 1
        state.tokens += x.numel()
        last = state.step == setup.n_steps
        if state.tokens < state.next_eval and not last:
            state.compute_s += time.perf_counter() - step_start
            continue

        # evaluate at the next fixed token mark, and at the end
        losses.flush()  # evaluations and checkpoints see every step's loss
        state.next_eval = (state.tokens // config.eval_every_tokens + 1) * config.eval_every_tokens
        metrics = _evaluation_metrics(config, setup, state, start)
        # Time in steps and evaluations alone: wall_time_s minus it is what reporting and checkpoints cost.
        state.compute_s += time.perf_counter() - step_start
        metrics["compute_time_s"] = state.compute_s
        state.loss_sum, state.batches = 0.0, 0
        state.history.append(metrics)
        # Saved before the report (a scheduler may stop the run at it, and a later trial of the same
        # config continues from here), on fixed token marks like evaluations: a scheduler's rungs
        # (automix/scheduling/_schedulers.py) stay checkpoints however far an evaluation overshoots.
        if out_dir and config.checkpoint_every_tokens and state.tokens >= state.next_checkpoint and not last:
            every = config.checkpoint_every_tokens
            state.next_checkpoint = (state.tokens // every + 1) * every
            state.elapsed = time.perf_counter() - start
            save_state(out_dir, config, model, optimizer, scheduler, asdict(state))
        if _stop_requested(report, metrics):
            stopped = True
            break
    return _finish(config, setup, state, stopped)


def _finish(config: TrainConfig, setup: _Setup, state: LoopState, stopped: bool) -> RunResult:
    """The run's result: its last evaluation (multiple choice added for a stopped run), model and result saved."""
    final = dict(state.history[-1])
    if setup.mc is not None and stopped and not config.data.mc_every_eval:
        setup.model.eval()  # a run stopped early is still scored on its final model
        final.update(setup.mc.evaluate(setup.model, setup.eval_batch_size, setup.autocast))
    checkpoint = None
    if config.out_dir:
        out_dir = Path(config.out_dir)
        checkpoint = str(save_checkpoint(out_dir, setup.model, config, setup.data.tokenizer))
        if not stopped:
            save_result(out_dir, config, final, state.history)
    return RunResult(metrics=final, history=state.history, checkpoint_path=checkpoint, stopped_early=stopped)
