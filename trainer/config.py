"""Typed configuration of one training run.

The trainer knows nothing of searches: a run is fully described by a `TrainConfig`. Every model
forbids unknown keys so that a typo in a YAML file is an error, not a silently ignored setting.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from trainer.budget import epochs_in, train_tokens


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


_SWITCH_WORDS = {"on": "on", "true": "on", "yes": "on", "off": "off", "false": "off", "no": "off"}


def _switch(value: object) -> object:
    """The "on" or "off" a user's word means: YAML reads on/off/yes/no/true/false as booleans."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        return _SWITCH_WORDS.get(value.strip().lower(), value)
    return value


# An on/off setting with an automatic default; `compile: on`, `compile=yes` and `compile: true` all mean "on".
OnOffAuto = Annotated[Literal["auto", "on", "off"], BeforeValidator(_switch)]


class DataConfig(_Strict):
    """Where the corpora are and how they become token ids.

    A source is a file or folder of .txt (one document per line) / .jsonl (a `text` field) /
    .parquet files, or `hf:NAME[:CONFIG]` for a Hugging Face dataset (streamed, capped).
    """

    target: str = Field(description="target-language training corpus")
    target_valid: str = Field(description="held-out target text: gives target_val_loss")
    auxiliary: str | None = Field(None, description="auxiliary-language training corpus")
    aux_valid: str | None = Field(None, description="held-out auxiliary text: gives aux_val_loss")
    tokenizer: Literal["byte", "bpe"] = "byte"
    vocab_size: int = Field(4096, ge=260, le=65535, description="BPE only")
    seq_len: int = Field(128, ge=8)
    data_seed: int = Field(0, description="fixes the document order, hence which U tokens are used")
    valid_tokens: int = Field(65536, ge=1, description="cap on tokens per validation set")
    hf_max_documents: int = Field(200_000, ge=1, description="cap when streaming a hub dataset")
    cache_dir: str = Field("work/cache", description="memory-mapped token arrays, keyed by content hash")
    eval_sets: dict[str, str] = Field(
        default_factory=dict, description="target-language multiple-choice JSONL sets, name → path"
    )
    aux_eval_sets: dict[str, str] = Field(
        default_factory=dict, description="auxiliary-language multiple-choice sets, name → path"
    )
    eval_items: int | None = Field(None, ge=1, description="cap on items per set (a seeded sample)")
    mc_every_eval: bool = Field(
        False, description="score the sets at every evaluation; otherwise only on the final model"
    )


class ModelConfig(_Strict):
    """Decoder-only pre-LN transformer; `width` scales, `base_width` (and under completep `base_depth`) anchor it.

    `mup`: μP in width (the `mup` package); `completep`: μP plus CompleteP's depth rules (trainer/model.py);
    `sp`: standard parametrisation.
    """

    width: int = Field(64, ge=8)
    base_width: int = Field(64, ge=8)
    depth: int = Field(2, ge=1)
    base_depth: int = Field(2, ge=1, description="completep: the depth lr, wd and init are stated at")
    n_heads: int = Field(4, ge=1)
    mlp_ratio: int = Field(4, ge=1)
    parametrization: Literal["mup", "completep", "sp"] = "mup"
    init_std: float = Field(0.02, gt=0, description="hidden-weight init std at base width")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelConfig:
        for w in (self.width, self.base_width):
            if w % self.n_heads:
                raise ValueError(f"width {w} is not divisible by n_heads {self.n_heads}")
        return self


class OptimConfig(_Strict):
    """AdamW (μP: MuAdamW) with a warmup-stable-decay schedule; lr and wd stated at base width."""

    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0, description="0 disables clipping")
    batch_size: int = Field(16, ge=1, description="sequences per step")
    warmup_tokens: int = Field(50_000, ge=0)
    decay_frac: float = Field(0.2, ge=0, le=1, description="share of T spent in the final linear decay")


class BudgetConfig(_Strict):
    """The data budget: U unique target tokens, E epochs over them, auxiliary share r of training tokens.

    `mode: epochs` searches E and derives T = E·U/(1-r); `mode: fixed_tokens` fixes T and derives
    E = (1-r)·T/U.
    """

    unique_tokens: int = Field(ge=1, description="U")
    epochs: float = Field(1.0, gt=0, description="E (derived in fixed_tokens mode)")
    mix_ratio: float = Field(0.0, ge=0, lt=1, description="r")
    mode: Literal["epochs", "fixed_tokens"] = "epochs"
    train_tokens: int | None = Field(None, ge=1, description="T, required in fixed_tokens mode")

    @model_validator(mode="after")
    def _fixed_needs_tokens(self) -> BudgetConfig:
        if self.mode == "fixed_tokens" and self.train_tokens is None:
            raise ValueError("budget.mode fixed_tokens needs budget.train_tokens")
        if self.mode == "epochs" and self.epochs < 1:
            raise ValueError(f"budget.epochs {self.epochs} is below 1: every target token is seen at least once")
        return self

    @property
    def total_tokens(self) -> int:
        """T: all training tokens, target and auxiliary."""
        if self.mode == "fixed_tokens":
            return int(self.train_tokens)
        return train_tokens(self.unique_tokens, self.epochs, self.mix_ratio)

    @property
    def effective_epochs(self) -> float:
        """E, derived from T in fixed_tokens mode."""
        if self.mode == "fixed_tokens":
            return epochs_in(self.total_tokens, self.unique_tokens, self.mix_ratio)
        return self.epochs


class RunSettings(_Strict):
    """What a run trains and how: data, model, optimiser, budget, seed, cadences, device.

    A study config (automix's `StudyConfig`) extends it with how to search; a `TrainConfig` with
    what one run writes and resumes.
    """

    data: DataConfig
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    budget: BudgetConfig
    seed: int = 0
    eval_every_tokens: int = Field(200_000, ge=1, description="fixed token marks keep trials comparable")
    checkpoint_every_tokens: int | None = Field(
        1_000_000, ge=1, description="save the training state this often (needs out_dir); none: only at the end"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: OnOffAuto = Field(
        "auto",
        description="torch.compile the training forward; auto: on for CUDA, off on CPU (see trainer/train.py, "
        "TrainStep); falls back to eager with a warning where compiling fails",
    )
    precision: Literal["auto", "fp32"] = Field(
        "auto", description="auto: bf16 autocast on CUDA, fp32 on CPU; fp32: no autocast anywhere"
    )


class TrainConfig(RunSettings):
    """One training run: the run settings, plus where it writes, what it resumes, threads and its divergence guard."""

    threads: int | None = Field(None, ge=1, description="torch threads; default: the trial's CPU share")
    out_dir: str | None = Field(None, description="checkpoints and the final model; none: nothing saved")
    resume_from: str | None = Field(None, description="another run's out_dir to continue from (a re-queued trial)")
    divergence_factor: float = Field(
        2.0, gt=1, description="stop as diverged when the smoothed train loss exceeds this × its best"
    )


# Settings that do not change what a run computes: a run may resume, or be served from a cache,
# under other ones.
# `compile` and `precision` change losses only at rounding level, as `device` does.
_NOT_IN_FINGERPRINT = {
    "out_dir",
    "resume_from",
    "threads",
    "device",
    "checkpoint_every_tokens",
    "compile",
    "precision",
}


def fingerprint(config: TrainConfig) -> str:
    """Hash of everything that determines a run's losses: the one key of its state, result and rerun cache."""
    fields = config.model_dump(exclude=_NOT_IN_FINGERPRINT)
    if config.model.parametrization != "completep":
        # base_depth changes nothing outside completep; dropped so runs from before it keep their key
        del fields["model"]["base_depth"]
    payload = json.dumps(fields, sort_keys=True)
    return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()
